"""The daemon's notifications: an issue waiting for approval under ``ask`` is announced once, other
policies never announce one, and the wiring hands the app's hub to the detection job."""

from __future__ import annotations

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonPolicy
from orchestrator.daemon.detection import DetectionJob, RepairResult
from orchestrator.daemon.state import DaemonState
from orchestrator.detect.report import DetectionReport
from orchestrator.model import Issue
from tests.unit.daemon.helpers import make_issue
from tests.unit.notify.conftest import Recorder


def job(policy: DaemonPolicy, issues: list[Issue], recorder: Recorder) -> DetectionJob:
    return DetectionJob(interval_s=60, target="vm:web", policy=policy,
                        detect=lambda: DetectionReport((), tuple(issues)),
                        repair=lambda: RepairResult("repaired", "s-1", "repaired"),
                        state=DaemonState(target="vm:web", policy=policy), audit=MemoryAuditSink(),
                        notify=recorder)


def test_ask_announces_each_new_issue_once() -> None:
    recorder, issues = Recorder(), [make_issue()]
    detection = job("ask", issues, recorder)
    detection.run()
    detection.run()
    [event] = recorder.events
    issue = issues[0]
    assert (event.kind, event.target, event.component) == ("awaiting_approval", "vm:web", issue.component)
    assert event.summary == (f"{issue.component}: {issue.summary}: waits for approval; repair with "
                             "`vmrepair run --target vm:web`")
    assert event.details["issue"] == issue.id and event.details["remedy"] == "vmrepair run --target vm:web"
    assert event.is_audited   # the detection job's issue_detected record is the audit trail
    issues.append(make_issue(subject="other.service"))
    detection.run()
    assert [e.details["issue"] for e in recorder.events[1:]] == [issues[1].id]


def test_other_policies_announce_no_approval() -> None:
    for policy in ("detect-only", "auto-repair"):
        recorder = Recorder()
        job(policy, [make_issue()], recorder).run()  # type: ignore[arg-type]
        assert "awaiting_approval" not in recorder.kinds()
