"""The probe retry policies in orchestrator.retry, and unit control through systemctl."""

from __future__ import annotations

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import CommandTimeoutError, ConnectError
from orchestrator.health.events import HealthEvent, HealthEventKind, audit_event
from orchestrator.health.systemctl import restart_unit, systemctl
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.retry import has_failed_probe, health_poll_policy, service_settle_policy
from orchestrator.transport.fake import FakeTransport


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


def test_systemctl_passes_the_unit_after_double_dash_and_reports_failures() -> None:
    transport = FakeTransport(lambda argv, stdin: (5, b"", b"Unit x.service not found.\n"))
    command = systemctl(transport, "stop", "-x.service")
    assert transport.argvs == [("systemctl", "stop", "--", "-x.service")]
    assert transport.calls[0].timeout == 120.0
    assert not command.succeeded
    assert command.describe() == "`systemctl stop -- -x.service` exited 5: Unit x.service not found."


def test_systemctl_timeout_is_a_result_not_an_error() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    command = restart_unit(FakeTransport(hang), "app.service")
    assert command.exit_status is None
    assert command.describe() == "`systemctl restart -- app.service` timed out"


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
