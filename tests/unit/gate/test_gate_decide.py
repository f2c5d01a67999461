"""The deadline, gate.on_error and the audit records of one gate decision."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import TransportError
from orchestrator.gate import Verdict, decide, record_verdict
from orchestrator.gate.decide import OnError
from orchestrator.model import IssueKind, ProbeResult, Severity

UNIT = "nginx.service"
BROKEN = ProbeResult("config:nginx", "nginx", False, IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t",
                     "nginx: config test `nginx -t` exited 1")


def test_the_evaluations_verdict_is_kept_with_its_time() -> None:
    ticks = iter([10.0, 10.25])
    verdict = decide(UNIT, lambda: Verdict(UNIT, "nginx", allowed=False, reason="config:nginx: bad",
                                           failed=(BROKEN,)),
                     deadline_s=5, on_error="allow", clock=lambda: next(ticks))
    assert (verdict.allowed, verdict.reason, verdict.elapsed_s, verdict.error) == (
        False, "config:nginx: bad", 0.25, None)


@pytest.mark.parametrize(("on_error", "allowed"), [("allow", True), ("refuse", False)])
def test_a_hung_evaluation_is_abandoned_at_the_deadline(on_error: OnError, allowed: bool) -> None:
    release = threading.Event()

    def hang() -> Verdict:
        release.wait(10)
        return Verdict(UNIT, "nginx", allowed=False, reason="too late")

    started = time.monotonic()
    try:
        verdict = decide(UNIT, hang, deadline_s=0.2, on_error=on_error)
    finally:
        release.set()
    took = time.monotonic() - started
    print(f"a hung gate answered after {took * 1000:.0f} ms (deadline 200 ms)")
    assert 0.2 <= took < 2.0
    assert verdict.allowed is allowed
    assert verdict.is_abandoned
    assert verdict.error == "no decision within the 0.2 s deadline"
    action = "allowing" if allowed else "refusing"
    assert verdict.reason == (f"the gate failed, {action} the start (gate.on_error: {on_error}): "
                              "no decision within the 0.2 s deadline")


@pytest.mark.parametrize(("on_error", "allowed"), [("allow", True), ("refuse", False)])
def test_an_error_of_the_tree_is_decided_by_on_error(on_error: OnError, allowed: bool) -> None:
    def unreachable() -> Verdict:
        raise TransportError("local: agent did not start")

    verdict = decide(UNIT, unreachable, deadline_s=5, on_error=on_error)
    assert (verdict.allowed, verdict.error, verdict.is_abandoned) == (
        allowed, "local: agent did not start", False)


def test_a_bug_allows_the_start_and_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def buggy() -> Verdict:
        raise KeyError("oops")

    with caplog.at_level(logging.ERROR, logger="orchestrator.gate.decide"):
        verdict = decide(UNIT, buggy, deadline_s=5, on_error="allow")
    assert verdict.allowed
    assert verdict.error == "KeyError: 'oops'"
    internal = [r for r in caplog.records if r.getMessage() == f"gate {UNIT}: internal error"]
    assert internal and internal[0].exc_info is not None
    assert any("allowing the start" in r.getMessage() for r in caplog.records)


def test_audit_records_refusal_durably_and_allowance_plainly() -> None:
    sink = MemoryAuditSink()
    record_verdict(sink, Verdict(UNIT, "nginx", allowed=False, reason="config:nginx: bad", failed=(BROKEN,),
                                 checked=("config:nginx",), elapsed_s=0.1234))
    record_verdict(sink, Verdict("cups.service", None, allowed=True, reason="no component"))
    refused, allowed = sink.records
    assert (refused["event"], refused["component"], refused["status"], refused["durable"]) == (
        "gate_refused", "nginx", "refused", True)
    assert refused["details"] == {
        "unit": UNIT, "reason": "config:nginx: bad", "checked": ["config:nginx"],
        "failed": [{"probe": "config:nginx", "kind": "config_invalid",
                    "summary": "nginx: config test `nginx -t` exited 1"}],
        "warnings": [], "elapsed_s": 0.123}
    assert (allowed["event"], allowed["component"], allowed["status"], allowed["durable"]) == (
        "gate_allowed", "cups.service", "allowed", False)


def test_the_gates_own_failure_is_in_the_record() -> None:
    sink = MemoryAuditSink()
    def down() -> Verdict:
        raise TransportError("down")

    verdict = decide(UNIT, down, deadline_s=5, on_error="allow")
    record_verdict(sink, verdict)
    assert sink.records[0]["event"] == "gate_allowed"
    assert sink.records[0]["details"]["error"] == "down"
