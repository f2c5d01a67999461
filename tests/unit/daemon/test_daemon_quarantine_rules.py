"""Quarantine for any component that keeps failing (issue 16): restart loops, failed repair runs,
escalations; and never a vital component."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.detection import DetectionJob, RepairResult
from orchestrator.daemon.jobs import HealthJob
from orchestrator.daemon.quarantine_rules import FailedRepairs, quarantine_reasons
from orchestrator.daemon.state import DaemonState
from orchestrator.detect.report import DetectionReport
from tests.unit.daemon.helpers import make_issue
from tests.unit.systemd.fakes import Clock


@dataclass
class Monitor:
    """A health monitor whose status() the test writes."""

    states: dict[str, dict[str, object]] = field(default_factory=dict)

    def poll_once(self) -> list[object]:
        return []

    def status(self) -> dict[str, dict[str, object]]:
        return self.states


@dataclass
class Daemon:
    monitor: Monitor
    job: HealthJob
    audit: MemoryAuditSink
    quarantined: list[tuple[str, str]]
    repairs: FailedRepairs
    clock: Clock


def daemon(vital: frozenset[str] = frozenset()) -> Daemon:
    monitor, audit, clock = Monitor(), MemoryAuditSink(), Clock()
    quarantined: list[tuple[str, str]] = []
    repairs = FailedRepairs(limit=3, window_s=3600, clock=clock)
    job = HealthJob(interval_s=15, monitor=monitor, quarantine=lambda c, r: quarantined.append((c, r)),
                    quarantine_after=2, is_vital=vital.__contains__, failed_repairs=repairs,
                    failed_repairs_window_s=3600, audit=audit)
    return Daemon(monitor, job, audit, quarantined, repairs, clock)


def test_a_unit_restart_loop_quarantines_a_component_without_http_checks() -> None:
    d = daemon()
    d.monitor.states = {"cache": {"restart_loop": "redis.service restarted itself 5 times within 900 s "
                                                  "(restart loop)"}}
    d.job.run()
    d.job.run()
    assert d.quarantined == [("cache", "restart loop: redis.service restarted itself 5 times within "
                                       "900 s (restart loop)")]


def test_repeated_failed_repairs_quarantine_within_the_window_only() -> None:
    d = daemon()
    for _ in range(2):
        d.repairs.record("worker", "not_repaired")
        d.clock.now += 1000
    d.job.run()
    assert d.quarantined == []
    d.clock.now += 1700  # the first failure is now older than the window
    d.repairs.record("worker", "not_repaired")
    d.job.run()
    assert d.quarantined == []
    d.repairs.record("worker", "not_repaired")
    d.job.run()
    assert d.quarantined == [("worker", "3 failed repair runs within 3600 s")]


def test_a_repair_that_worked_starts_the_count_over_and_errors_do_not_count() -> None:
    repairs = FailedRepairs(limit=2, window_s=3600, clock=Clock())
    repairs.record("worker", "not_repaired")
    repairs.record("worker", "repaired")
    repairs.record("worker", "not_repaired")
    # vmrepair's own failure or a fault the VM could not show says nothing about the component.
    repairs.record("worker", "error")
    repairs.record("worker", "not_reproduced")
    assert repairs.over_limit() == {}
    repairs.record("worker", "not_repaired")
    assert repairs.over_limit() == {"worker": 2}


def test_a_vital_component_is_never_quarantined_and_is_audited_once_as_spared() -> None:
    d = daemon(vital=frozenset({"postgres", "nginx", "app"}))
    d.monitor.states = {"postgres": {"restart_loop": "postgresql.service hit its start limit"},
                        "nginx": {"escalations": 5}}
    for _ in range(3):
        d.repairs.record("app", "not_repaired")
    d.job.run()
    d.job.run()
    assert d.quarantined == []
    spared = [(r["component"], r["status"]) for r in d.audit.records]
    assert sorted(spared) == [("app", "spared_vital"), ("nginx", "spared_vital"),
                              ("postgres", "spared_vital")]
    assert all(r["durable"] and r["details"]["why"] == "vital components are never quarantined"
               for r in d.audit.records)


def test_the_default_is_vital_so_a_caller_that_does_not_say_quarantines_nothing() -> None:
    quarantined: list[tuple[str, str]] = []
    job = HealthJob(interval_s=15, monitor=Monitor({"x": {"escalations": 9}}),
                    quarantine=lambda c, r: quarantined.append((c, r)))
    job.run()
    assert quarantined == []


def test_escalations_win_over_a_loop_in_the_reason_and_loops_need_a_reason() -> None:
    reasons = quarantine_reasons({"a": {"escalations": 2, "restart_loop": "u looped"},
                                  "b": {"escalations": 0, "restart_loop": ""}}, {},
                                 after_escalations=2, failed_repairs_window_s=60)
    assert reasons == {"a": "2 escalations and still failing; repairs did not hold"}


def test_failed_repair_runs_reach_the_count_through_the_detection_job() -> None:
    """Three auto-repair runs that end not_repaired for `worker` (one also fixing `web`) quarantine
    `worker` only: the run's per-component outcomes decide, not its overall status."""
    repairs = FailedRepairs(limit=3, window_s=3600, clock=Clock())
    result = RepairResult("not_repaired", "s-1", "one fixed, one not",
                          components=(("worker", "repaired"), ("worker", "not_repaired"),
                                      ("web", "repaired")))
    state = DaemonState(target="local", policy="auto-repair")
    job = DetectionJob(interval_s=60, target="local", policy="auto-repair",
                       detect=lambda: DetectionReport((), (make_issue("worker"),
                                                           make_issue("web", subject="w"))),
                       repair=lambda: result, state=state, audit=MemoryAuditSink(), retry_after_s=0,
                       on_repair=repairs.record)
    for _ in range(3):
        job.run()
    assert repairs.over_limit() == {"worker": 3}


def test_a_run_without_per_component_outcomes_counts_by_its_own_status() -> None:
    assert RepairResult("not_repaired", "s", "x").by_component(["a", "b"]) == {"a": "not_repaired",
                                                                               "b": "not_repaired"}
