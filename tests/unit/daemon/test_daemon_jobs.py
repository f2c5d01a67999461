"""Baselines only of a freshly healthy target and at most once per period; escalation; health polls."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.jobs import BaselineJob, BaselineRecord, Escalation, HealthJob, TextfileJob
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import StateError
from orchestrator.model import Issue, IssueKind, Severity
from tests.unit.daemon.helpers import make_issue

DAY = 86400.0


@dataclass
class Recorder:
    """Stands in for record_baseline + the baseline store."""

    clock: list[float]
    recorded_at: list[float] = field(default_factory=list)

    def record(self) -> BaselineRecord:
        self.recorded_at.append(self.clock[0])
        return BaselineRecord("20260101T000000Z", "/state/baselines/local/20260101T000000Z",
                              ("nginx", "sampleapp"))

    def last(self) -> float | None:
        return self.recorded_at[-1] if self.recorded_at else None


def _setup(audit: MemoryAuditSink) -> tuple[BaselineJob, DaemonState, Recorder, list[float]]:
    now = [1_000_000.0]
    state = DaemonState(target="local", policy="auto-repair", clock=lambda: now[0])
    recorder = Recorder(now)
    job = BaselineJob(interval_s=60, period_s=DAY, target="local", record=recorder.record,
                      last_recorded_at=recorder.last, state=state, audit=audit, clock=lambda: now[0])
    return job, state, recorder, now


def _detect(state: DaemonState, *issues: Issue) -> None:
    state.record_detection(issues, duration_s=0, probes=5, unavailable=[], new_state="recorded")


def test_nothing_is_recorded_before_the_first_detection(audit: MemoryAuditSink) -> None:
    job, _, recorder, _ = _setup(audit)
    job.run()
    assert recorder.recorded_at == []


def test_recorded_after_a_healthy_detection_then_once_per_period(audit: MemoryAuditSink) -> None:
    job, state, recorder, now = _setup(audit)
    _detect(state)
    job.run()
    assert recorder.recorded_at == [now[0]]
    assert audit.records == [{"event": "baseline", "component": "daemon", "status": "recorded",
                              "details": {"target": "local", "baseline": "20260101T000000Z",
                                          "directory": "/state/baselines/local/20260101T000000Z",
                                          "components": ["nginx", "sampleapp"]}, "durable": False}]
    now[0] += 3600
    _detect(state)
    job.run()
    assert len(recorder.recorded_at) == 1  # within the period
    now[0] += DAY
    _detect(state)
    job.run()
    assert len(recorder.recorded_at) == 2
    assert state.metrics().baselines == 2


def test_a_critical_issue_anywhere_blocks_the_baseline(audit: MemoryAuditSink) -> None:
    job, state, recorder, _ = _setup(audit)
    _detect(state, make_issue())
    job.run()
    assert recorder.recorded_at == []


def test_a_warning_does_not_block_the_baseline(audit: MemoryAuditSink) -> None:
    job, state, recorder, _ = _setup(audit)
    _detect(state, make_issue("host", IssueKind.DISK_FULL, Severity.WARNING, "/"))
    job.run()
    assert len(recorder.recorded_at) == 1


def test_a_stale_detection_is_not_used_twice(audit: MemoryAuditSink) -> None:
    job, state, recorder, now = _setup(audit)
    _detect(state)
    job.run()
    now[0] += 2 * DAY
    job.run()  # no detection since the last look: the target's health is unknown
    assert len(recorder.recorded_at) == 1


def test_escalation_audits_and_triggers_a_detection(audit: MemoryAuditSink) -> None:
    triggered: list[str] = []
    Escalation(triggered.append, audit, "detect")("sampleapp", "3 restarts in 900 s", Severity.WARNING)
    assert triggered == ["detect"]
    assert audit.records == [{"event": "escalation", "component": "sampleapp", "status": "escalated",
                              "details": {"reason": "3 restarts in 900 s", "severity": "warning"},
                              "durable": True}]


def test_the_escalation_severity_goes_to_the_issues_the_detection_finds(audit: MemoryAuditSink) -> None:
    state = DaemonState(target="local", policy="auto-repair")
    order: list[str] = []
    escalate = Escalation(lambda job: order.append(f"trigger {job}"), audit, "detect",
                          on_severity=lambda c, s: (order.append(f"{c} {s}"), state.escalated(c, s)))
    escalate("sampleapp", "its dependencies are broken: ...", Severity.WARNING)
    # Told before the detection runs, so that detection's issues carry it.
    assert order == ["sampleapp warning", "trigger detect"]
    _detect(state, make_issue(), make_issue("nginx", subject="nginx.service"))
    severities = {t.issue.component: t.issue.severity for t in state.tracked()}
    assert severities == {"sampleapp": Severity.WARNING, "nginx": Severity.CRITICAL}
    # The baseline job waits for a detection without critical issues: the warning does not hold it.
    _detect(state, make_issue())
    assert not state.has_critical_issues()
    # Once a detection finds none of its issues, the escalation is over: the probe's severity again.
    _detect(state)
    _detect(state, make_issue())
    assert state.tracked()[0].issue.severity is Severity.CRITICAL
    assert state.has_critical_issues()


@dataclass
class FakeMonitor:
    """A health monitor whose escalation counts the test sets."""

    escalations: dict[str, int] = field(default_factory=dict)
    polls: int = 0

    def poll_once(self) -> list[object]:
        self.polls += 1
        return []

    def status(self) -> dict[str, dict[str, object]]:
        return {name: {"escalations": n, "failing": True} for name, n in self.escalations.items()}


def test_health_job_polls_and_quarantines_once_at_the_threshold() -> None:
    monitor = FakeMonitor({"sampleapp": 1, "nginx": 0})
    quarantined: list[tuple[str, str]] = []
    job = HealthJob(interval_s=15, monitor=monitor, quarantine_after=2,
                    quarantine=lambda c, reason: quarantined.append((c, reason)), is_vital=lambda c: False)
    job.run()
    assert (monitor.polls, quarantined) == (1, [])
    monitor.escalations["sampleapp"] = 2
    job.run()
    job.run()
    assert monitor.polls == 3
    assert quarantined == [("sampleapp", "2 escalations and still failing; repairs did not hold")]


def test_health_job_without_quarantine_only_polls() -> None:
    monitor = FakeMonitor({"sampleapp": 5})
    job = HealthJob(interval_s=15, monitor=monitor)
    job.run()
    assert (job.name, job.interval_s, monitor.polls) == ("health", 15, 1)


def test_the_textfile_job_never_fails_and_logs_a_failing_write_once(
        caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[Exception | None] = [StateError("cannot write /x/vmrepair.prom: Permission denied"),
                                        StateError("cannot write /x/vmrepair.prom: Permission denied"),
                                        None, StateError("cannot write /x/vmrepair.prom: No space")]

    def write() -> Path | None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return Path("/x/vmrepair.prom")

    job = TextfileJob(interval_s=60, write=write)
    for _ in range(4):
        job.run()
    warnings = [r.getMessage() for r in caplog.records if "metrics textfile not written" in r.getMessage()]
    assert warnings == [
        "metrics textfile not written (logged once until it works again): cannot write /x/vmrepair.prom: "
        "Permission denied",
        "metrics textfile not written (logged once until it works again): cannot write /x/vmrepair.prom: "
        "No space"]
