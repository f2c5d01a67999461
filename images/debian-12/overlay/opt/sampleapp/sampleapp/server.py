"""HTTP front end: GET /health, GET /ready; every request is recorded in the journal."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
# timezone.utc, not datetime.UTC (3.11+): the recipe also builds for older releases (bullseye: 3.9).
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sampleapp import __version__
from sampleapp.journal import Journal

# Longest request target copied into the journal; the rest is cut off.
MAX_LOGGED_PATH = 2048

Body = dict[str, Any]


class SampleAppServer(ThreadingHTTPServer):
    """A threading HTTP server that owns the interaction journal."""

    daemon_threads = True
    request_queue_size = 128  # listen() backlog; the stdlib default of 5 drops bursts

    def __init__(self, address: tuple[str, int], journal: Journal) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.journal = journal
        self._journal_failing = False
        self._state_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the bind address with getfqdn(); that is a DNS
        # lookup, which can stall on a guest without a resolver. Skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away: nothing worth a journal entry
        print(f"sampleapp: error serving {client_address[0]}: {exc!r}", file=sys.stderr, flush=True)

    def journal_write_failed(self, exc: OSError) -> None:
        """Report a failing journal once, not once per request."""
        with self._state_lock:
            first, self._journal_failing = not self._journal_failing, True
        if first:
            print(
                f"sampleapp: cannot write interaction log {self.journal.path}: {exc}; "
                "answering 503 until it works again",
                file=sys.stderr,
                flush=True,
            )

    def journal_write_succeeded(self) -> None:
        with self._state_lock:
            recovered, self._journal_failing = self._journal_failing, False
        if recovered:
            print(
                f"sampleapp: interaction log {self.journal.path} writable again",
                file=sys.stderr,
                flush=True,
            )


def _health(server: SampleAppServer) -> tuple[HTTPStatus, Body]:
    return HTTPStatus.OK, {"status": "ok"}


def _ready(server: SampleAppServer) -> tuple[HTTPStatus, Body]:
    return HTTPStatus.OK, {"ready": True, "log_lines": server.journal.entries}


ROUTES: dict[str, Callable[[SampleAppServer], tuple[HTTPStatus, Body]]] = {
    "/health": _health,
    "/ready": _ready,
}
READ_METHODS = ("GET", "HEAD")


class RequestHandler(BaseHTTPRequestHandler):
    server: SampleAppServer
    server_version = f"sampleapp/{__version__}"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request logging: the interaction journal is the record."""

    def _dispatch(self) -> None:
        method = self.command
        route = ROUTES.get(urlsplit(self.path).path)
        headers: dict[str, str] = {}
        if route is None:
            status, body = HTTPStatus.NOT_FOUND, {"error": "not found"}
        elif method not in READ_METHODS:
            status, body = HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"}
            headers["Allow"] = ", ".join(READ_METHODS)
        else:
            status, body = route(self.server)
        record = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "method": method,
            "path": self.path[:MAX_LOGGED_PATH],
            "status": int(status),
            "client": self.client_address[0],
        }
        # The entry is written before the answer leaves, so a client that got a response
        # can rely on finding its line in the log.
        try:
            self.server.journal.append(record)
        except OSError as exc:
            self.server.journal_write_failed(exc)
            status, body = HTTPStatus.SERVICE_UNAVAILABLE, {"error": "interaction log unavailable"}
        else:
            self.server.journal_write_succeeded()
        self._respond(status, body, headers, send_body=method != "HEAD")

    def _respond(self, status: HTTPStatus, body: Body, headers: dict[str, str], *, send_body: bool) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(payload)

    do_GET = _dispatch
    do_HEAD = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch
    do_OPTIONS = _dispatch
