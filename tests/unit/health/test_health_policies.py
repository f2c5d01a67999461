"""The probe retry policies in orchestrator.retry (unit control is tested in tests/unit/systemd)."""

from __future__ import annotations

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import ConnectError
from orchestrator.health.events import HealthEvent, HealthEventKind, audit_event
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.retry import has_failed_probe, health_poll_policy, service_settle_policy


def result(ok: bool, *, unavailable: bool = False) -> ProbeResult:
    return ProbeResult("http:x", "app", ok, IssueKind.HTTP_DOWN, Severity.CRITICAL, "x",
                       "pass" if ok else "fail", is_unavailable=unavailable)


def test_has_failed_probe_ignores_unavailable_results() -> None:
    assert has_failed_probe(result(False))
    assert has_failed_probe([result(True), result(False)])
    assert not has_failed_probe(result(False, unavailable=True))
    assert not has_failed_probe((result(True),))
    assert not has_failed_probe("not a result")


def test_health_poll_policy_returns_the_last_failed_result_after_backing_off() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def probe() -> ProbeResult:
        calls.append(1)
        return result(False)

    policy = health_poll_policy(attempts=4, backoff_s=1.0, backoff_max_s=3.0, sleep=sleeps.append)
    assert policy(probe) == result(False)
    assert len(calls) == 4
    assert sleeps == [1.0, 2.0, 3.0]


def test_health_poll_policy_reraises_the_real_error() -> None:
    def probe() -> ProbeResult:
        raise ConnectError("ssh session dropped", host="web")

    policy = health_poll_policy(attempts=2, backoff_s=0.5, backoff_max_s=1.0, sleep=lambda _s: None)
    with pytest.raises(ConnectError, match="ssh session dropped"):
        policy(probe)


def test_service_settle_policy_stops_as_soon_as_everything_passes() -> None:
    answers = iter([[result(False)], [result(True), result(False, unavailable=True)], [result(False)]])
    sleeps: list[float] = []
    outcome = service_settle_policy(sleep=sleeps.append)(lambda: next(answers))
    assert outcome == [result(True), result(False, unavailable=True)]
    assert sleeps == [1.0]


def test_service_settle_policy_gives_up_with_the_last_results() -> None:
    sleeps: list[float] = []
    outcome = service_settle_policy(attempts=3, sleep=sleeps.append)(lambda: [result(False)])
    assert outcome == [result(False)]
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize(("kind", "event", "status"), [
    (HealthEventKind.FAILED, "error", "error"),
    (HealthEventKind.RESTARTED, "recovery", "ok"),
    (HealthEventKind.RESTART_FAILED, "recovery", "failed"),
    (HealthEventKind.ESCALATED, "health", "escalated"),
    (HealthEventKind.RECOVERED, "health", "recovered"),
])
def test_every_event_kind_reaches_the_audit_trail(kind: HealthEventKind, event: str, status: str) -> None:
    sink = MemoryAuditSink()
    audit_event(sink, HealthEvent("app", kind, "what happened", 1.0, {"probes": "http:x"}))
    (record,) = sink.records
    assert (record["event"], record["component"], record["status"]) == (event, "app", status)
    assert record["details"]["health_event"] == str(kind)
    assert record["details"]["probes"] == "http:x"
