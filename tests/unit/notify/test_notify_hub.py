"""The hub: routing, inline and background delivery, and that nothing a channel does reaches the caller
(failures, bugs, a receiver that never answers, a full queue)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import AuditError, NotifyError
from orchestrator.notify.event import Event, EventKind
from orchestrator.notify.hub import Notifications

REPAIRED = Event(EventKind.REPAIRED, "vm:web", "nginx repaired", component="nginx")
FAILED = Event(EventKind.NOT_REPAIRED, "vm:web", "nginx not repaired", component="nginx")


@dataclass
class FakeChannel:
    name: str
    is_inline: bool = False
    fail: Exception | None = None
    gate: threading.Event | None = None
    got: list[Event] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    def deliver(self, event: Event) -> None:
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.got.append(event)


def hub(*channels: FakeChannel, routes: Mapping[str, tuple[str, ...]] | None = None,
        audit: Any = None, queue_size: int = 10, flush_timeout_s: float = 5.0) -> Notifications:
    table = routes or {"*": tuple(c.name for c in channels)}
    return Notifications({c.name: c for c in channels}, lambda kind: table.get(str(kind), table.get("*", ())),
                         audit or MemoryAuditSink(), queue_size=queue_size, flush_timeout_s=flush_timeout_s)


def test_routes_send_each_kind_to_its_channels() -> None:
    log, ops = FakeChannel("log", is_inline=True), FakeChannel("ops")
    notes = hub(log, ops, routes={"*": ("log",), "not_repaired": ("log", "ops")})
    notes.emit(REPAIRED)
    notes.emit(FAILED)
    assert notes.flush()
    assert log.got == [REPAIRED, FAILED]
    assert ops.got == [FAILED]


def test_an_empty_route_silences_the_event() -> None:
    log = FakeChannel("log", is_inline=True)
    notes = hub(log, routes={"*": ("log",), "repaired": ()})
    notes.emit(REPAIRED)
    assert log.got == []


def test_inline_channels_run_on_the_caller_thread_others_in_the_background() -> None:
    log, ops = FakeChannel("log", is_inline=True), FakeChannel("ops")
    notes = hub(log, ops)
    notes.emit(REPAIRED)
    assert notes.flush()
    assert log.threads == [threading.current_thread().name]
    assert ops.threads == ["vmrepair-notify"]
    notes.close()


def test_a_slow_receiver_never_holds_the_caller() -> None:
    gate = threading.Event()
    slow = FakeChannel("ops", gate=gate)
    notes = hub(slow)
    began = time.monotonic()
    for _ in range(3):
        notes.emit(FAILED)
    assert time.monotonic() - began < 1.0
    assert not notes.flush(0.1)   # still busy
    gate.set()
    assert notes.flush()
    assert len(slow.got) == 3


@pytest.mark.parametrize("failure", [NotifyError("webhook https://hooks.example: HTTP 500"),
                                     RuntimeError("a bug in a channel")])
def test_a_failing_channel_is_audited_and_never_raised(failure: Exception) -> None:
    audit = MemoryAuditSink()
    broken, log = FakeChannel("ops", fail=failure), FakeChannel("log", is_inline=True)
    notes = hub(broken, log, audit=audit)
    notes.emit(FAILED)
    assert notes.flush()
    assert log.got == [FAILED]   # the others still get it
    [record] = audit.records
    assert record["event"] == "error" and record["component"] == "notify"
    assert record["details"]["channel"] == "ops" and record["details"]["kind"] == "not_repaired"
    assert str(failure) in record["details"]["message"]


def test_an_inline_failure_with_a_dead_audit_log_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    class DeadAudit:
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise AuditError("audit log: disk full")

    notes = hub(FakeChannel("log", is_inline=True, fail=NotifyError("log: cannot write")), audit=DeadAudit())
    notes.emit(FAILED)   # no exception
    assert "cannot audit a notification failure: audit log: disk full" in caplog.text


def test_a_full_queue_drops_the_new_event_and_says_so() -> None:
    gate, audit = threading.Event(), MemoryAuditSink()
    slow = FakeChannel("ops", gate=gate)
    notes = hub(slow, audit=audit, queue_size=1)
    notes.emit(FAILED)
    deadline = time.monotonic() + 5
    while not slow.threads and time.monotonic() < deadline:   # the worker holds the first one
        time.sleep(0.01)
    for _ in range(3):   # one queued, two dropped
        notes.emit(FAILED)
    gate.set()
    assert notes.flush()
    assert len(slow.got) == 2
    assert [r["details"]["message"] for r in audit.records] == [
        "notify failed: dropped: 1 notifications already wait for delivery"] * 2


def test_close_flushes_within_its_deadline_and_audits_what_was_left() -> None:
    gate, audit = threading.Event(), MemoryAuditSink()
    notes = hub(FakeChannel("ops", gate=gate), audit=audit, flush_timeout_s=0.2)
    notes.emit(FAILED)
    notes.emit(FAILED)
    began = time.monotonic()
    notes.close()
    assert time.monotonic() - began < 2
    assert any(r["details"]["message"] == "notifications not delivered at exit" for r in audit.records)
    notes.emit(FAILED)   # after close: refused, audited, never raised
    assert any("closed" in r["details"]["message"] for r in audit.records)
    gate.set()


def test_close_delivers_what_is_queued() -> None:
    ops = FakeChannel("ops")
    notes = hub(ops)
    for _ in range(5):
        notes.emit(REPAIRED)
    notes.close()
    assert len(ops.got) == 5
