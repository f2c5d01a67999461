"""The API client (`vmrepair status`) against hostile servers: deadline over the whole answer, size cap."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.daemon.client import MAX_RESPONSE_BYTES, DaemonClient
from orchestrator.errors import DaemonError

Answer = Callable[[socket.socket], None]


@pytest.fixture
def fake_server(sock_path: Path) -> Iterator[Callable[[Answer], None]]:
    """Serve one connection on ``sock_path`` with ``answer`` (after reading the request head)."""
    threads: list[threading.Thread] = []
    sock_path.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(4)

    def start(answer: Answer) -> None:
        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                buf = b""
                while b"\r\n\r\n" not in buf and (chunk := conn.recv(4096)):
                    buf += chunk
                with contextlib.suppress(OSError):  # the client gave up: the point of most tests here
                    answer(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    listener.close()
    for thread in threads:
        thread.join(timeout=5)


def _trickle(conn: socket.socket) -> None:
    """One byte every 0.1 s, for ever (until the client hangs up)."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000:
        conn.send(bytes([byte]))
        time.sleep(0.1)


def test_a_trickling_server_is_cut_off_at_the_overall_deadline(fake_server: Callable[[Answer], None],
                                                              sock_path: Path) -> None:
    """Regression (issue 13 item 10): the timeout applied per read, so a server sending one byte
    every 2 s kept `vmrepair status` waiting for ever."""
    fake_server(_trickle)
    began = time.monotonic()
    with pytest.raises(DaemonError) as caught:
        DaemonClient(sock_path, timeout=0.5).get("/health")
    assert time.monotonic() - began < 2
    assert caught.value.message == f"the daemon on {sock_path} did not answer /health within 0.5 s"
    assert caught.value.remedy == "check `systemctl status vmrepair` and its journal"


def test_an_endless_answer_is_cut_off_at_the_size_cap(fake_server: Callable[[Answer], None],
                                                     sock_path: Path) -> None:
    def flood(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        chunk = b" " * 65536
        for _ in range(MAX_RESPONSE_BYTES // len(chunk) + 16):
            conn.sendall(chunk)

    fake_server(flood)
    with pytest.raises(DaemonError) as caught:
        DaemonClient(sock_path, timeout=5).get("/issues")
    assert caught.value.message == (f"the daemon on {sock_path} answered /issues with more than "
                                    f"{MAX_RESPONSE_BYTES} bytes")
    assert caught.value.remedy == "check `systemctl status vmrepair` and its journal"


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "closed the connection without an answer"),
    (b"garbage\r\n\r\n", "malformed answer"),
    (b"HTTP/1.1 abc OK\r\n\r\n{}", "malformed answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "answer cut short"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}", "malformed answer"),
    (b"HTTP/1.1 200 OK\r\n\r\n\xff\xfe", "not JSON"),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 100000, "not JSON"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}", None),
])
def test_odd_answers_are_daemon_errors(fake_server: Callable[[Answer], None], sock_path: Path,
                                       raw: bytes, why: str | None) -> None:
    fake_server(lambda conn: conn.sendall(raw))
    client = DaemonClient(sock_path, timeout=5)
    if why is None:
        assert client.get("/health") == (200, {"a": 1})
        return
    with pytest.raises(DaemonError, match=f"^the daemon on {sock_path} .*{why}"):
        client.get("/health")


def test_the_request_names_the_endpoint_and_closes(fake_server: Callable[[Answer], None],
                                                   sock_path: Path) -> None:
    fake_server(lambda conn: conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n{}"))
    with pytest.raises(DaemonError, match="refused this user"):
        DaemonClient(sock_path, timeout=5).get("/health")


def test_several_requests_can_share_one_deadline(fake_server: Callable[[Answer], None],
                                                 sock_path: Path) -> None:
    def slow(conn: socket.socket) -> None:
        time.sleep(0.4)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n{}")

    for _ in range(3):
        fake_server(slow)
    client = DaemonClient(sock_path, timeout=1)
    deadline = client.deadline()
    assert client.get("/health", deadline=deadline) == (200, {})
    assert client.get("/ready", deadline=deadline) == (200, {})
    with pytest.raises(DaemonError, match=f"^the daemon on {sock_path} did not answer /issues within 1 s$"):
        client.get("/issues", deadline=deadline)
