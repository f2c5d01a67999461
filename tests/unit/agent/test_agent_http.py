"""The agent's http_status: a GET from the host itself, no redirect, no proxy, the body never read;
the client's checks of its answer; and the http probe asking through it."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from orchestrator.agent.remote import vmrepair_agent
from orchestrator.detect import http as http_probe
from orchestrator.errors import AgentError
from orchestrator.model import Component, HttpCheck, IssueKind
from tests.unit.agent.test_agent_client import _fake


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/")
        elif path == "/missing":
            self.send_response(404)
        else:
            self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x" * 100_000)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _ask(url: object, timeout: object = 5, tmp: str = "/tmp") -> dict[str, object]:
    return vmrepair_agent.handle({"op": "http_status", "args": {"url": url, "timeout_s": timeout}},
                                 work_dir=tmp)


def test_the_status_is_answered_and_a_redirect_is_not_followed(server: str) -> None:
    assert _ask(f"{server}/") == {"ok": True, "result": {"status": 200, "error": None}}
    assert _ask(f"{server}/moved")["result"] == {"status": 301, "error": None}
    assert _ask(f"{server}/missing?q=1")["result"] == {"status": 404, "error": None}


def test_no_listener_is_no_answer_with_the_reason() -> None:
    with socket.socket() as sock:   # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = _ask(f"http://127.0.0.1:{port}/")["result"]
    assert isinstance(result, dict) and result["status"] is None
    assert "ConnectionRefusedError" in str(result["error"])


@pytest.mark.parametrize(("url", "timeout"), [
    ("file:///etc/shadow", 5), ("ftp://127.0.0.1/", 5), ("http://127.0.0.1/ x", 5), ("http://", 5),
    ("http://127.0.0.1:99999/", 5), (None, 5), ("http://127.0.0.1/", 0), ("http://127.0.0.1/", 61),
    ("http://127.0.0.1/", "5"), ("http://127.0.0.1/\u202e", 5),
])
def test_bad_requests_are_refused(url: object, timeout: object) -> None:
    answer = _ask(url, timeout)
    assert answer["ok"] is False and answer["code"] == "invalid"


def test_the_client_checks_the_answer() -> None:
    agent, _ = _fake({"http_status": {"status": 200, "error": None}})
    assert agent.http_status("http://127.0.0.1/", timeout_s=5) == (200, "")
    agent, _ = _fake({"http_status": {"status": None, "error": "ConnectionRefusedError: \x1b[31mno"}})
    assert agent.http_status("http://127.0.0.1/", timeout_s=5) == (None, "ConnectionRefusedError: ?[31mno")
    for bad in ({"status": 200, "error": "both"}, {"status": None, "error": None},
                {"status": 42, "error": None}, {"status": 200, "error": None, "extra": 1}):
        agent, _ = _fake({"http_status": bad})
        with pytest.raises(AgentError):
            agent.http_status("http://127.0.0.1/", timeout_s=5)


class _Asking:
    def __init__(self, answer: tuple[int | None, str] | AgentError) -> None:
        self.answer = answer

    def http_status(self, url: str, *, timeout_s: float) -> tuple[int | None, str]:
        if isinstance(self.answer, AgentError):
            raise self.answer
        return self.answer


CHECK = HttpCheck("http://127.0.0.1:80/")
NGINX = Component("nginx", units=("nginx.service",), http=(CHECK,))


def test_the_probe_asks_through_the_agent_when_it_can() -> None:
    from orchestrator.transport.fake import FakeTransport

    transport = FakeTransport()
    ok = http_probe.probe_http(transport, NGINX, CHECK, 5.0, _Asking((200, "")))
    assert ok.ok and ok.evidence == {"expected": "200", "status": "200", "asked_by": "agent"}
    assert transport.argvs == []   # no curl
    down = http_probe.probe_http(transport, NGINX, CHECK, 5.0, _Asking((None, "ConnectionRefusedError: x")))
    assert (down.ok, down.kind, down.evidence["status"]) == (False, IssueKind.HTTP_DOWN, "000")
    assert "no HTTP answer (ConnectionRefusedError: x)" in down.summary
    wrong = http_probe.probe_http(transport, NGINX, CHECK, 5.0, _Asking((502, "")))
    assert wrong.summary == "http://127.0.0.1:80/ answered 502, expected 200"
    failed = http_probe.probe_http(transport, NGINX, CHECK, 5.0, _Asking(AgentError("agent gone")))
    assert failed.is_unavailable and "agent gone" in failed.summary
