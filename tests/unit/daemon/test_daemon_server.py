"""The API server over a real unix socket: limits, timeouts, peer credentials, concurrency."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.http import Request, Response
from orchestrator.daemon.ratelimit import LogBudget
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
                is_allowed: Callable[[Peer], bool] | None = None,
                credentials: Callable[[socket.socket], Peer] | None = None,
                refusals: LogBudget | None = None) -> ApiServer:
        kwargs: dict[str, Any] = {} if uid is None else {"credentials": lambda _conn: Peer(4242, uid, uid)}
        if credentials is not None:
            kwargs["credentials"] = credentials
        if refusals is not None:
            kwargs["refusals"] = refusals
        server = ApiServer(bind_listener(sock_path, backlog=64), handler, audit,
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
    # Refused at accept, before the request is read (issue 13 item 6): no method or path to record.
    assert audit.records == [{"event": "api_denied", "component": "daemon", "status": "denied",
                              "details": {"uid": 1000, "pid": 4242, "gid": 1000}, "durable": False}]


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


# -- refused peers and slots (issue 13 item 6) -------------------------------------------------------

def _client_as(sock_path: Path, uid: int, n: int) -> socket.socket:
    """A client whose bound name carries the uid :func:`_by_name` reports for it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path.parent / f"c-{uid}-{n}"))
    sock.settimeout(5)
    sock.connect(str(sock_path))
    return sock


def _by_name(conn: socket.socket) -> Peer:
    """Fake credentials: the uid in the client's bound name (``c-UID-N``), root when unbound."""
    name = conn.getpeername()
    uid = int(Path(name).name.split("-")[1]) if name else 0
    return Peer(4242, uid, uid)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_refused_peers_do_not_starve_root(serve: Serve, sock_path: Path) -> None:
    """Regression: the request was read before the uid check, so refused peers sending slowly held
    every slot for request_timeout_s and root got 503."""
    serve(credentials=_by_name, max_connections=4, timeout=5)
    slow = [_client_as(sock_path, 1000, n) for n in range(8)]
    try:
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # and never the rest
        time.sleep(0.2)
        began = time.monotonic()
        assert split_response(http_get(sock_path, "/health"))[0] == 200
        assert time.monotonic() - began < 1
    finally:
        for sock in slow:
            sock.close()


def test_a_refused_peer_is_answered_403_before_sending_anything(serve: Serve, sock_path: Path) -> None:
    serve(credentials=_by_name, timeout=5)
    with _client_as(sock_path, 1000, 0) as sock:
        began = time.monotonic()
        status, _, body = split_response(_read_all(sock))
    assert (status, json.loads(body)) == (403, {"error": "uid 1000 may not use this API"})
    assert time.monotonic() - began < 1


def test_one_slot_is_kept_for_root(serve: Serve, sock_path: Path) -> None:
    serve(credentials=_by_name, allowed=(1000,), max_connections=2, timeout=5)
    with _client_as(sock_path, 1000, 0):  # idle: holds the one slot other uids may use
        time.sleep(0.1)
        with _client_as(sock_path, 1000, 1) as second:
            second.sendall(b"GET /health HTTP/1.1\r\n\r\n")
            assert split_response(_read_all(second))[0] == 503
        assert split_response(http_get(sock_path, "/health"))[0] == 200


def test_refusals_are_logged_and_audited_at_a_bounded_rate(serve: Serve, sock_path: Path,
                                                           audit: MemoryAuditSink,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    serve(credentials=_by_name, refusals=LogBudget(burst=3, window_s=60, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="orchestrator.daemon.server"):
        for n in range(10):
            with _client_as(sock_path, 1000, n) as sock:
                assert split_response(_read_all(sock))[0] == 403
        now[0] = 61.0
        with _client_as(sock_path, 1000, 99) as sock:
            assert split_response(_read_all(sock))[0] == 403
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines[:3] == ["API connection from uid 1000 (pid 4242) refused"] * 3
    assert lines[3:] == ["API connection from uid 1000 (pid 4242) refused (7 more refused connections "
                         "were not logged)"]
    assert len(audit.records) == 4
    assert audit.records[-1]["details"] == {"uid": 1000, "pid": 4242, "gid": 1000, "suppressed": 7}


def test_a_failing_request_is_logged_with_its_path_capped_and_escaped(
        serve: Serve, sock_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: the request path was logged whole, control characters and all."""
    def boom(_request: Request) -> Response:
        raise RuntimeError("kaput")

    serve(boom)
    path = "/x\x1b[31m" + "a" * 100_000
    with caplog.at_level(logging.ERROR, logger="orchestrator.daemon.server"):
        assert split_response(http_get(sock_path, path))[0] == 500
    [message] = [r.getMessage() for r in caplog.records if "handler failed" in r.getMessage()]
    assert message.startswith("API handler failed for GET /x\\x1b[31maaa")
    assert message.endswith(f"… ({len(path) - 200:,} more characters)")
    assert len(message) < 300
    assert "\x1b" not in message
