"""Fixtures for the notification tests: a recording emitter, a local webhook server on 127.0.0.1 (an
ephemeral port, in a thread) whose answers the test scripts, and a URL nobody listens on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.notify.event import Event


@dataclass
class Recorder:
    """An :class:`~orchestrator.notify.event.Emitter` that keeps what it was given."""

    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events]


@dataclass
class Hook:
    """What the test webhook received; ``statuses`` are its answers in turn (the last one repeats),
    ``stall_first`` requests get no answer within any client timeout."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=lambda: [200])
    stall_first: int = 0

    def status_for(self, index: int) -> int:
        return self.statuses[min(index, len(self.statuses) - 1)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def hook() -> Iterator[Hook]:
    release = threading.Event()
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            index = len(state.received)
            state.received.append({"path": self.path, "body": body})
            if index < state.stall_first:
                release.wait(10)
                return
            self.send_response(state.status_for(index))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook/SECRET-TOKEN"
    yield state
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
