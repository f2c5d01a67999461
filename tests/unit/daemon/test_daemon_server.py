"""The API server over a real unix socket: limits, timeouts, peer credentials, concurrency."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.http import Request, Response
from orchestrator.daemon.server import ApiServer, Peer, json_response, uid_check
from orchestrator.daemon.socketpath import bind_listener
from tests.unit.daemon.helpers import http_get, split_response

Serve = Callable[..., ApiServer]


def _hello(request: Request) -> Response:
    return json_response(HTTPStatus.OK, {"path": request.path, "query": request.query})


@pytest.fixture
def serve(sock_path: Path, audit: MemoryAuditSink) -> Iterator[Serve]:
    """Start an ApiServer on ``sock_path``; ``uid`` fakes the peer's credentials when given."""
    servers: list[ApiServer] = []

    def factory(handler: Callable[[Request], Response] = _hello, *, uid: int | None = 0,
                allowed: tuple[int, ...] = (), timeout: float = 2.0, max_connections: int = 4,
                is_allowed: Callable[[Peer], bool] | None = None) -> ApiServer:
        kwargs = {} if uid is None else {"credentials": lambda _conn: Peer(4242, uid, uid)}
        server = ApiServer(bind_listener(sock_path, backlog=8), handler, audit,
                           is_allowed=is_allowed or uid_check(allowed), request_timeout_s=timeout,
                           max_connections=max_connections, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


def test_get_is_answered_and_the_connection_closed(serve: Serve, sock_path: Path) -> None:
    serve()
    status, headers, body = split_response(http_get(sock_path, "/health?x=1"))
    assert status == 200
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"path": "/health", "query": {"x": "1"}}


def test_real_peer_credentials_are_read_with_so_peercred(serve: Serve, sock_path: Path) -> None:
    peers: list[Peer] = []

    def remember(peer: Peer) -> bool:
        peers.append(peer)
        return True

    serve(uid=None, is_allowed=remember)
    status, _, _ = split_response(http_get(sock_path, "/health"))
    assert status == 200
    assert peers == [Peer(os.getpid(), os.geteuid(), os.getegid())]


def test_non_root_peer_gets_403_and_is_audited(serve: Serve, sock_path: Path,
                                              audit: MemoryAuditSink) -> None:
    serve(uid=1000)
    status, _, body = split_response(http_get(sock_path, "/issues"))
    assert status == 403
    assert json.loads(body) == {"error": "uid 1000 may not use this API"}
    assert audit.records == [{"event": "api_denied", "component": "daemon", "status": "denied",
                              "details": {"uid": 1000, "pid": 4242, "gid": 1000, "method": "GET",
                                          "path": "/issues"}, "durable": False}]


def test_uids_listed_in_settings_are_allowed(serve: Serve, sock_path: Path) -> None:
    serve(uid=1000, allowed=(1000,))
    assert split_response(http_get(sock_path, "/health"))[0] == 200


def test_request_over_one_megabyte_by_content_length_gets_413(serve: Serve, sock_path: Path) -> None:
    serve()
    raw = b"GET /health HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"
    status, _, body = split_response(http_get(sock_path, "", raw=raw))
    assert status == 413
    assert json.loads(body) == {"error": "request over 1048576 bytes"}


def test_request_head_over_one_megabyte_gets_413(serve: Serve, sock_path: Path) -> None:
    serve()
    raw = b"GET /health HTTP/1.1\r\nX-Padding: " + b"a" * (1024 * 1024 + 10) + b"\r\n\r\n"
    status, _, _ = split_response(http_get(sock_path, "", raw=raw))
    assert status == 413


def test_request_with_a_small_body_is_served(serve: Serve, sock_path: Path) -> None:
    serve()
    raw = b"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    assert split_response(http_get(sock_path, "", raw=raw))[0] == 200


def test_slow_loris_is_cut_off_at_the_deadline(serve: Serve, sock_path: Path) -> None:
    serve(timeout=0.5)
    answer = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(sock_path))
        began = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        # One byte every 0.1 s: each recv() on the server gets data, yet the request never ends.
        # Read whatever comes back in between, as a client would, until the server hangs up.
        for _ in range(50):
            try:
                sock.sendall(b"X")
                time.sleep(0.1)
                while chunk := sock.recv(4096, socket.MSG_DONTWAIT):
                    answer += chunk
                if answer:
                    break  # EOF after the answer: the server is done with us
            except BlockingIOError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - began
    assert split_response(answer)[0] == 408
    assert json.loads(split_response(answer)[2]) == {"error": "request not received in time"}
    assert elapsed < 2.0


def test_malformed_request_gets_400(serve: Serve, sock_path: Path) -> None:
    serve()
    status, _, body = split_response(http_get(sock_path, "", raw=b"HELLO\r\n\r\n"))
    assert status == 400
    assert json.loads(body) == {"error": "malformed request line"}


def test_connections_beyond_the_bound_get_503(serve: Serve, sock_path: Path) -> None:
    serve(max_connections=1, timeout=5)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(sock_path))
        time.sleep(0.1)  # the idle connection holds the only slot
        status, headers, _ = split_response(http_get(sock_path, "/health"))
        assert (status, headers["retry-after"]) == (503, "1")
    deadline = time.monotonic() + 2
    while split_response(http_get(sock_path, "/health"))[0] != 200:  # slot freed once idle closes
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_failing_handler_answers_500_and_the_server_keeps_serving(serve: Serve, sock_path: Path) -> None:
    calls = threading.Semaphore(0)

    def flaky(request: Request) -> Response:
        calls.release()
        if request.path == "/boom":
            raise RuntimeError("kaput")
        return _hello(request)

    serve(flaky)
    status, _, body = split_response(http_get(sock_path, "/boom"))
    assert (status, json.loads(body)) == (500, {"error": "RuntimeError: kaput"})
    assert split_response(http_get(sock_path, "/health"))[0] == 200


def test_close_stops_accepting(serve: Serve, sock_path: Path) -> None:
    server = serve()
    server.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(str(sock_path))
