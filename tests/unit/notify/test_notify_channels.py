"""Channels against the real thing: a webhook server on 127.0.0.1 (retries on 5xx and timeouts, none on
4xx), a small Python process for the command, and the log channel's audit record."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import NotifyError, NotifyTransientError
from orchestrator.notify.channels import CommandChannel, LogChannel, WebhookChannel
from orchestrator.notify.event import Event, EventKind
from tests.unit.notify.conftest import Hook

EVENT = Event(EventKind.NOT_REPAIRED, "vm:web", "nginx: config does not parse: no strategy validated",
              component="nginx", session_id="s-1", details={"manual_steps": ["read the report"]},
              at="2026-12-06T20:00:00Z")
#: Writes its stdin to the file named by argv[1].
CAPTURE = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"


def webhook(url: str, *, retries: int = 2, timeout_s: float = 2.0) -> tuple[WebhookChannel, list[float]]:
    waits: list[float] = []
    return WebhookChannel("ops", url, timeout_s=timeout_s, retries=retries, backoff_s=0.5,
                          sleep=waits.append), waits


def test_webhook_posts_the_event_json(hook: Hook) -> None:
    channel, waits = webhook(hook.url)
    channel.deliver(EVENT)
    [request] = hook.received
    assert request["path"] == "/hook/SECRET-TOKEN"
    body = json.loads(request["body"])
    assert body == {"kind": "not_repaired", "at": "2026-12-06T20:00:00Z", "target": "vm:web",
                    "component": "nginx", "session_id": "s-1", "summary": EVENT.summary,
                    "details": {"manual_steps": ["read the report"]}}
    assert waits == []


def test_webhook_retries_a_500_with_backoff_then_succeeds(hook: Hook) -> None:
    hook.statuses = [500, 503, 200]
    channel, waits = webhook(hook.url, retries=2)
    channel.deliver(EVENT)
    assert len(hook.received) == 3
    assert waits == [0.5, 1.0]   # exponential, through the injected sleep: the test never waits


def test_webhook_gives_up_after_its_retries_with_the_last_error(hook: Hook) -> None:
    hook.statuses = [500]
    channel, waits = webhook(hook.url, retries=1)
    with pytest.raises(NotifyTransientError, match=r"HTTP 500") as caught:
        channel.deliver(EVENT)
    assert len(hook.received) == 2 and len(waits) == 1
    assert "SECRET-TOKEN" not in caught.value.message and "127.0.0.1" in caught.value.message


def test_webhook_does_not_retry_a_4xx(hook: Hook) -> None:
    hook.statuses = [404]
    channel, waits = webhook(hook.url, retries=3)
    with pytest.raises(NotifyError, match="HTTP 404") as caught:
        channel.deliver(EVENT)
    assert not isinstance(caught.value, NotifyTransientError)
    assert len(hook.received) == 1 and waits == []


def test_webhook_timeout_is_retried_and_bounded(hook: Hook) -> None:
    hook.stall_first = 1
    channel, waits = webhook(hook.url, retries=1, timeout_s=0.3)
    began = time.monotonic()
    channel.deliver(EVENT)
    assert time.monotonic() - began < 5
    assert len(hook.received) == 2 and waits == [0.5]


def test_webhook_unreachable_is_transient(dead_url: str) -> None:
    channel, waits = webhook(dead_url, retries=2)
    with pytest.raises(NotifyTransientError, match="unreachable"):
        channel.deliver(EVENT)
    assert len(waits) == 2


def test_command_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    CommandChannel("page", [sys.executable, "-c", CAPTURE, str(out)], timeout_s=30).deliver(EVENT)
    assert json.loads(out.read_bytes())["kind"] == "not_repaired"


def test_command_failure_and_timeout_are_notify_errors() -> None:
    failing = CommandChannel("page", [sys.executable, "-c", "import sys; sys.stderr.write('no route'); "
                                      "sys.exit(3)"], timeout_s=30)
    with pytest.raises(NotifyError, match="exited 3: no route"):
        failing.deliver(EVENT)
    hung = CommandChannel("page", [sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    began = time.monotonic()
    with pytest.raises(NotifyError, match=r"killed after 0\.5 s"):
        hung.deliver(EVENT)
    assert time.monotonic() - began < 10


def test_log_channel_logs_and_audits(caplog: pytest.LogCaptureFixture) -> None:
    audit = MemoryAuditSink()
    with caplog.at_level(logging.INFO):
        LogChannel(audit).deliver(EVENT)
    assert any(r.levelno == logging.WARNING and "not_repaired vm:web nginx" in r.getMessage()
               for r in caplog.records)
    [record] = audit.records
    assert (record["event"], record["component"], record["status"]) == ("not_repaired", "nginx",
                                                                        "not_repaired")
    assert record["details"]["session_id"] == "s-1"


def test_log_channel_does_not_audit_twice_what_its_stage_audited() -> None:
    audit = MemoryAuditSink()
    LogChannel(audit).deliver(Event(EventKind.QUARANTINED, "local", "nginx quarantined", is_audited=True))
    assert audit.records == []
