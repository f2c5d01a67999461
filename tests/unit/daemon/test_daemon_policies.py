"""The detection job under each policy: who touches the target, what is recorded and audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonPolicy
from orchestrator.daemon.detection import DetectionJob, RepairResult
from orchestrator.daemon.state import DaemonState
from orchestrator.detect.report import DetectionReport
from orchestrator.errors import TransportError
from orchestrator.model import Issue
from tests.unit.daemon.helpers import make_issue
from tests.unit.systemd.fakes import Clock as _Clock

STOPPED = make_issue()


@dataclass
class FakeTarget:
    """Detection answers with ``issues``; a repair returns ``outcome`` (and clears them if repaired)."""

    issues: list[Issue] = field(default_factory=lambda: [STOPPED])
    outcome: str = "repaired"
    repairs: int = 0

    def detect(self) -> DetectionReport:
        return DetectionReport((), tuple(self.issues))

    def repair(self) -> RepairResult:
        self.repairs += 1
        if self.outcome == "repaired":
            self.issues = []
        return RepairResult(self.outcome, f"session-{self.repairs}", f"{self.outcome} by the fake")


def Clock() -> _Clock:
    """The shared test clock, started far from 0 (policies compare against hours-old readings)."""
    return _Clock(1_000_000.0)


Make = Callable[..., DetectionJob]


@pytest.fixture
def make_job(audit: MemoryAuditSink) -> Callable[..., tuple[DetectionJob, DaemonState, list[str]]]:
    def factory(policy: DaemonPolicy, target: FakeTarget, *, clock: _Clock | None = None,
                repairs_allowed: bool = True, detect: Callable[[], DetectionReport] | None = None,
                ) -> tuple[DetectionJob, DaemonState, list[str]]:
        state = DaemonState(target="local", policy=policy, clock=clock or Clock())
        if not repairs_allowed:
            state.set_startup_failed("recovery failed: journal corrupt")
        announced: list[str] = []
        job = DetectionJob(interval_s=60, target="local", policy=policy, detect=detect or target.detect,
                           repair=target.repair, state=state, audit=audit, announce=announced.append,
                           retry_after_s=600)
        return job, state, announced

    return factory


def _events(audit: MemoryAuditSink) -> list[tuple[str, str, str]]:
    return [(r["event"], r["component"], r["status"]) for r in audit.records]


def test_auto_repair_runs_the_pipeline_and_records_the_outcome(make_job: Make,
                                                                 audit: MemoryAuditSink) -> None:
    target = FakeTarget()
    job, state, announced = make_job("auto-repair", target)
    job.run()
    assert target.repairs == 1
    [tracked] = state.tracked()
    assert (tracked.state, tracked.session) == ("repaired", "session-1")
    assert _events(audit) == [("issue_detected", "sampleapp", "recorded"),
                              ("repair", "sampleapp", "repaired")]
    assert audit.records[1]["durable"] is True
    assert audit.records[1]["details"]["session"] == "session-1"
    assert "repairing local: sampleapp:unit_inactive:" in announced[0]
    job.run()  # fixed: the next detection clears the issue, nothing more to repair
    assert target.repairs == 1
    assert state.tracked() == []
    assert _events(audit)[-1] == ("issue_cleared", "sampleapp", "cleared")
    assert state.metrics().repairs_by_outcome == {"repaired": 1}


def test_ask_records_pending_and_never_touches_the_target(make_job: Make, audit: MemoryAuditSink) -> None:
    target = FakeTarget()
    job, state, announced = make_job("ask", target)
    job.run()
    job.run()
    assert target.repairs == 0
    [tracked] = state.tracked()
    assert tracked.state == "pending"
    assert _events(audit) == [("issue_detected", "sampleapp", "pending")]  # once, not every run
    assert audit.records[0]["details"]["remedy"] == "vmrepair run --target local"
    assert announced[0] == ("1 issue(s) on local wait for approval; repair with "
                            "`vmrepair run --target local`")


def test_detect_only_records_and_never_touches_the_target(make_job: Make, audit: MemoryAuditSink) -> None:
    target = FakeTarget()
    job, state, _ = make_job("detect-only", target)
    job.run()
    assert target.repairs == 0
    assert [t.state for t in state.tracked()] == ["recorded"]
    assert _events(audit) == [("issue_detected", "sampleapp", "recorded")]


def test_no_repairs_after_a_failed_start_up_recovery(make_job: Make) -> None:
    target = FakeTarget()
    job, state, _ = make_job("auto-repair", target, repairs_allowed=False)
    job.run()
    assert target.repairs == 0
    assert [t.state for t in state.tracked()] == ["recorded"]


def test_an_unfixed_issue_is_retried_only_after_the_retry_period(make_job: Make,
                                                                  audit: MemoryAuditSink) -> None:
    target, clock = FakeTarget(outcome="not_repaired"), Clock()
    job, state, _ = make_job("auto-repair", target, clock=clock)
    job.run()
    clock.now += 60
    job.run()
    assert target.repairs == 1
    assert [t.state for t in state.tracked()] == ["not_repaired"]
    clock.now += 600
    job.run()
    assert target.repairs == 2
    assert [r["status"] for r in audit.records if r["event"] == "repair"] == ["not_repaired"] * 2


def test_a_pipeline_error_is_audited_as_an_error(make_job: Make, audit: MemoryAuditSink) -> None:
    job, _, _ = make_job("auto-repair", FakeTarget(outcome="error"))
    job.run()
    errors = [r for r in audit.records if r["event"] == "error"]
    assert errors[0]["details"]["message"] == "repair of local failed: error by the fake"


def test_an_issue_that_comes_back_after_a_repair_is_repaired_again(make_job: Make) -> None:
    target = FakeTarget()
    job, _, _ = make_job("auto-repair", target)
    job.run()
    target.issues = [STOPPED]  # broken again before the next detection saw it healthy
    job.run()
    assert target.repairs == 2


def test_a_repair_deferred_by_the_state_lock_stays_due(make_job: Make, audit: MemoryAuditSink) -> None:
    target = FakeTarget(outcome="deferred")
    job, state, _ = make_job("auto-repair", target)
    job.run()
    assert [t.state for t in state.tracked()] == ["recorded"]
    assert audit.records[-1]["event"] == "repair_deferred"
    assert audit.records[-1]["details"]["reason"] == "deferred by the fake"
    assert state.metrics().repairs_by_outcome == {}
    job.run()
    assert target.repairs == 2


def test_unreachable_target_raises_for_the_scheduler(make_job: Make) -> None:
    def unreachable() -> DetectionReport:
        raise TransportError("local: cannot run systemctl", host="local")

    job, state, _ = make_job("auto-repair", FakeTarget(), detect=unreachable)
    with pytest.raises(TransportError, match="cannot run systemctl"):
        job.run()
    assert state.detection_runs() == 0
