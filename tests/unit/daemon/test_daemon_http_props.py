"""Property tests of the API's request parser (issue 13): whatever bytes a client sends, reading
them ends in a Request, a 4xx/501 answer (HttpStatusError) or "client went away"
(ConnectionError), within the deadline, and the routes answer a parsed request without a 5xx."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.api import ApiRoutes
from orchestrator.daemon.http import HttpStatusError, Request, read_request
from orchestrator.daemon.server import ApiServer, Peer, uid_check
from orchestrator.daemon.socketpath import bind_listener
from orchestrator.daemon.state import DaemonState

#: What a client may send: printable ASCII plus the bytes that matter to the grammar.
_GRAMMAR = st.sampled_from([b"GET", b"POST", b" ", b"\r\n", b"\r\n\r\n", b":", b"/", b"?", b"=", b"&",
                            b"HTTP/1.1", b"HTTP/1.0", b"Content-Length", b"Transfer-Encoding", b"%",
                            b"[", b"//", b"\x00", b"\xff", b"\xb2", b"0", b"9" * 5000, b"-1", b"#"])
_REQUESTS = st.one_of(st.binary(max_size=2048),
                      st.lists(st.one_of(_GRAMMAR, st.binary(max_size=16)), max_size=40).map(b"".join))


def _parse(data: bytes, *, max_bytes: int = 4096) -> Request | HttpStatusError | ConnectionError:
    client, server = socket.socketpair()
    with client, server:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        try:
            return read_request(server, deadline=time.monotonic() + 2, max_bytes=max_bytes)
        except (HttpStatusError, ConnectionError) as exc:
            return exc


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_REQUESTS)
@example(b"GET / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
@example(b"GET //[ HTTP/1.1\r\n\r\n")
@example(b"GET http://[::1 HTTP/1.1\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
def test_any_bytes_end_in_a_request_a_4xx_or_connection_error(data: bytes) -> None:
    began = time.monotonic()
    result = _parse(data)
    assert time.monotonic() - began < 2.5
    if isinstance(result, HttpStatusError):
        assert 400 <= result.status < 500 or result.status == HTTPStatus.NOT_IMPLEMENTED, result.status
        assert result.message


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> ApiRoutes:
    return ApiRoutes(DaemonState(target="local", policy="ask"), tmp_path_factory.mktemp("sessions"))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "HEAD", "get", "DELETE", "X" * 300]),
       path=st.one_of(st.sampled_from(["/health", "/ready", "/sessions", "/issues", "/metrics", "/", "//"]),
                      st.text(max_size=64)),
       query=st.dictionaries(st.sampled_from(["limit", "x", ""]), st.text(max_size=40), max_size=3))
def test_routes_answer_any_parsed_request_without_a_5xx(routes: ApiRoutes, method: str, path: str,
                                                       query: dict[str, str]) -> None:
    response = routes(Request(method, path, query, {}))
    assert response.status < 500 or (path.rstrip("/") == "/ready" and response.status == 503)
    if response.content_type == "application/json":
        assert isinstance(json.loads(response.body), dict)


def test_a_huge_content_length_is_400_not_a_crash() -> None:
    """Found by the property above: 5,000 digits passed isdigit() and int() raised ValueError."""
    result = _parse(b"GET / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", max_bytes=8192)
    assert isinstance(result, HttpStatusError)
    assert (result.status, result.message) == (HTTPStatus.BAD_REQUEST, "invalid Content-Length")


def test_an_unparsable_target_is_400_not_a_crash(tmp_path: Path) -> None:
    """Found by the property above: urlsplit raises ValueError on '//[' (an unclosed IPv6 host)."""
    result = _parse(b"GET //[ HTTP/1.1\r\n\r\n")
    assert isinstance(result, HttpStatusError)
    assert (result.status, result.message) == (HTTPStatus.BAD_REQUEST, "malformed request target")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_REQUESTS)
def test_the_server_answers_any_bytes_below_500_or_hangs_up_in_time(
        api_server: Path, data: bytes) -> None:
    """End to end over the socket: an answer with a status below 500 (never a traceback's 500), or,
    for a request cut short by the client, a hang-up; never a wait past the request deadline."""
    began = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(api_server))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert time.monotonic() - began < 3
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert status < 500 or status == 501 or (status == 503 and b"ready" in answer), answer[:200]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("api")
    path = directory / "run" / "api.sock"
    server = ApiServer(bind_listener(path, backlog=16),
                       ApiRoutes(DaemonState(target="local", policy="ask"), directory / "sessions"),
                       MemoryAuditSink(), is_allowed=uid_check(()), request_timeout_s=1,
                       max_connections=8, credentials=lambda _conn: Peer(1, 0, 0))
    server.start()
    yield path
    server.close()
