"""Notifiers against the real thing: an HTTP server on 127.0.0.1 (ephemeral port) for the webhook, a
small Python process for the command, and the composite that never lets a failure through."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.reboot import RebootSettings
from orchestrator.errors import AuditError, ConfigError, NotifyError
from orchestrator.reboot.notify import (
    CommandNotifier,
    CompositeNotifier,
    LogNotifier,
    RebootEvent,
    WebhookNotifier,
    build_notifiers,
)

EVENT = RebootEvent("reboot_failed", "vm:web", "vm:web did not come back", txn_id="tx-1",
                    support_ref="VMR-1A2B3C4D", manual_steps=["reach the console"],
                    at="2025-03-26T10:00:00+01:00")
#: Writes its stdin to the file named by argv[1].
CAPTURE = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"


@dataclass
class Hook:
    """What the test webhook server received, and how it answers."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    location: str = ""
    stall: bool = False


@pytest.fixture
def hook() -> Iterator[Hook]:
    release = threading.Event()
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if state.stall:
                release.wait(10)   # never answers within the client's timeout
                return
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """An http URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class FailingAudit:
    def record(self, event: str, *, component: str, status: str,
               details: Mapping[str, Any] | None = None, durable: bool = False) -> None:
        raise AuditError("audit log /var/log/vmrepair/audit.jsonl: disk full")


def test_event_as_json() -> None:
    data = json.loads(EVENT.to_json())
    assert data == {"kind": "reboot_failed", "target": "vm:web", "message": "vm:web did not come back",
                    "txn_id": "tx-1", "support_ref": "VMR-1A2B3C4D", "manual_steps": ["reach the console"],
                    "at": "2025-03-26T10:00:00+01:00", "reboot_at": None}
    with pytest.raises(ValueError, match="unknown reboot event kind 'exploded'"):
        RebootEvent("exploded", "vm:web", "m")  # type: ignore[arg-type]


# -- log ------------------------------------------------------------------------------------------------

def test_log_notifier_logs_and_audits(caplog: pytest.LogCaptureFixture) -> None:
    audit = MemoryAuditSink()
    with caplog.at_level(logging.INFO, logger="orchestrator.reboot.notify"):
        LogNotifier(audit).notify(EVENT)
    assert caplog.records[-1].levelno == logging.WARNING
    assert caplog.records[-1].getMessage() == "reboot_failed vm:web: vm:web did not come back"
    assert audit.records == [{"event": "reboot_failed", "component": "reboot", "status": "reboot_failed",
                              "details": EVENT.as_dict(), "durable": True}]


def test_log_notifier_maps_an_audit_failure() -> None:
    with pytest.raises(NotifyError) as caught:
        LogNotifier(FailingAudit()).notify(EVENT)
    assert caught.value.message == ("log: cannot write the audit record: audit log "
                                    "/var/log/vmrepair/audit.jsonl: disk full")


# -- webhook --------------------------------------------------------------------------------------------

def test_webhook_posts_the_event_as_json(hook: Hook) -> None:
    WebhookNotifier(hook.url + "/hooks/reboot", timeout_s=5).notify(EVENT)
    [request] = hook.received
    assert request["path"] == "/hooks/reboot"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"].startswith("vmrepair/")
    assert json.loads(request["body"]) == EVENT.as_dict()


def test_webhook_accepts_any_2xx(hook: Hook) -> None:
    hook.status = 204
    WebhookNotifier(hook.url, timeout_s=5).notify(EVENT)
    assert len(hook.received) == 1


def test_webhook_error_status_fails_without_leaking_the_token(hook: Hook) -> None:
    hook.status = 500
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(hook.url + "/hooks/T0KEN-SECRET", timeout_s=5).notify(EVENT)
    assert caught.value.message == f"webhook {hook.url}: HTTP 500 Internal Server Error"
    assert "T0KEN" not in caught.value.message


def test_webhook_does_not_follow_redirects(hook: Hook) -> None:
    hook.status, hook.location = 302, hook.url + "/elsewhere"
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(hook.url, timeout_s=5).notify(EVENT)
    assert caught.value.message == f"webhook {hook.url}: HTTP 302 Found (redirects are not followed)"
    assert [r["path"] for r in hook.received] == ["/"]


def test_webhook_timeout(hook: Hook) -> None:
    hook.stall = True
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(hook.url, timeout_s=0.3).notify(EVENT)
    assert caught.value.message == f"webhook {hook.url}: no answer within 0.3 s"
    assert time.monotonic() - started < 5


def test_webhook_unreachable(dead_url: str) -> None:
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(dead_url, timeout_s=2).notify(EVENT)
    assert caught.value.message.startswith(f"webhook {dead_url.removesuffix('/hook')} unreachable: ")
    assert "Connection refused" in caught.value.message


@pytest.mark.parametrize("url", ["ftp://files.example/hook", "file:///etc/passwd", "http://"])
def test_webhook_only_http_and_https(url: str) -> None:
    with pytest.raises(ConfigError, match=r"must be http:// or https:// with a host"):
        WebhookNotifier(url)


# -- command --------------------------------------------------------------------------------------------

def test_command_gets_the_event_on_stdin_and_argv_literally(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    CommandNotifier([sys.executable, "-c", CAPTURE, str(out)], timeout_s=30).notify(EVENT)
    assert json.loads(out.read_bytes()) == EVENT.as_dict()
    literal = tmp_path / "argv.txt"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    CommandNotifier([sys.executable, "-c", script, str(literal), "$(id); echo pwned"]).notify(EVENT)
    assert literal.read_text() == "$(id); echo pwned"   # no shell ever saw it


def test_command_non_zero_exit_names_status_and_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('pager down\\n'); sys.exit(3)"]
    with pytest.raises(NotifyError) as caught:
        CommandNotifier(argv).notify(EVENT)
    assert caught.value.message == f"command {sys.executable}: exited 3: pager down"


def test_command_timeout_kills_it() -> None:
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        CommandNotifier([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.3).notify(EVENT)
    assert caught.value.message == f"command {sys.executable}: killed after 0.3 s"
    assert time.monotonic() - started < 10


def test_command_missing_program() -> None:
    with pytest.raises(NotifyError) as caught:
        CommandNotifier(["/nonexistent/notify-pager"]).notify(EVENT)
    assert caught.value.message == ("command /nonexistent/notify-pager: local: program "
                                    "'/nonexistent/notify-pager' not found (is it installed and on PATH?)")


def test_command_needs_an_argv() -> None:
    with pytest.raises(ConfigError, match="notify command: argv is empty"):
        CommandNotifier([])


# -- composite ------------------------------------------------------------------------------------------

def test_a_dead_webhook_never_blocks_the_others(tmp_path: Path, dead_url: str) -> None:
    out = tmp_path / "event.json"
    settings = RebootSettings(notifiers=[
        {"kind": "webhook", "url": dead_url, "timeout_s": 2},
        {"kind": "log"},
        {"kind": "command", "argv": [sys.executable, "-c", CAPTURE, str(out)]},
    ])
    audit = MemoryAuditSink()
    composite = build_notifiers(settings, audit)
    assert [name for name, _ in composite.notifiers] == [
        f"webhook {dead_url.removesuffix('/hook')}", "log", f"command {sys.executable}"]
    composite.notify(EVENT)   # does not raise
    assert json.loads(out.read_bytes())["kind"] == "reboot_failed"
    errors = [r for r in audit.records if r["event"] == "error"]
    assert len(errors) == 1
    assert errors[0]["details"]["message"].startswith(
        f"notify failed: webhook {dead_url.removesuffix('/hook')} unreachable:")
    assert errors[0]["details"]["notifier"] == f"webhook {dead_url.removesuffix('/hook')}"
    assert [r["event"] for r in audit.records] == ["error", "reboot_failed"]


class _BuggyNotifier:
    def notify(self, event: RebootEvent) -> None:
        raise RuntimeError("bug in a notifier")


def test_composite_swallows_bugs_and_audit_failures(caplog: pytest.LogCaptureFixture) -> None:
    audit = MemoryAuditSink()
    CompositeNotifier([("buggy", _BuggyNotifier())], audit).notify(EVENT)
    assert audit.records[0]["details"]["message"] == "notify failed: RuntimeError: bug in a notifier"
    with caplog.at_level(logging.WARNING, logger="orchestrator.reboot.notify"):
        CompositeNotifier([("buggy", _BuggyNotifier())], FailingAudit()).notify(EVENT)
    assert "cannot audit the notifier failure: audit log /var/log/vmrepair/audit.jsonl: disk full" in [
        r.getMessage() for r in caplog.records]
