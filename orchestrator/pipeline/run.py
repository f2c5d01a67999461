"""`vmrepair run`: the whole repair of one target, as a session with evidence.

The target is only *read* until a fix has been reproduced, repaired and validated in a troubleshooting
VM; then it is changed once, through a fix package with a verified backup, and validated again. Any
failure before that point leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.config.reboot import RebootPolicy
from orchestrator.errors import ConnectError, PipelineError, TransportError, VmRepairError
from orchestrator.model import RUN_EXIT_CODES, Issue, SessionStatus
from orchestrator.pipeline import escalate, triage
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.probes import DetectorProbes
from orchestrator.report.markdown import write_report
from orchestrator.session.store import Session, new_session
from orchestrator.targets.spec import TargetSpec, open_target, parse_target

log = logging.getLogger(__name__)

Confirm = Callable[[str], bool]


@dataclass
class RunOptions:
    dry_run: bool = False
    assume_yes: bool = False
    confirm: Confirm | None = None
    #: Overrides settings.repair.stable_period_s (tests and demos use shorter periods).
    stable_period_s: float | None = None
    #: ``--reboot-policy``: overrides settings.reboot.policy, and is the operator's explicit consent
    #: to reboot automatically a target that has no boot fallback.
    reboot_policy: RebootPolicy | None = None
    #: Overrides settings.reboot.notice_s for ``automatic``.
    reboot_notice_s: float | None = None
    #: Overrides settings.reboot.attempt_budget.
    attempt_budget: int | None = None


@dataclass
class RunOutcome:
    session: Session
    status: SessionStatus
    issues: list[Issue]
    summary: str
    report: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return RUN_EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session.id, "status": str(self.status), "summary": self.summary,
                "issues": [i.as_dict() for i in self.issues], "report": self.report,
                "session_dir": str(self.session.dir), "components": self.details}


#: How several component outcomes combine: the worst wins.
_SEVERITY = [SessionStatus.HEALTHY, SessionStatus.REPAIRED, SessionStatus.PENDING_REBOOT,
             SessionStatus.NOT_REPRODUCED, SessionStatus.NOT_REPAIRED, SessionStatus.ERROR]


def run_repair(app: App, target: str, options: RunOptions) -> RunOutcome:
    """Run the pipeline against ``target``; never raises for pipeline failures (they become status
    ``error`` with the stage named), only for invalid input (bad target syntax → ConfigError)."""
    spec = parse_target(target)
    session = new_session(app.settings.sessions_dir, str(spec), audit=app.audit)
    session.set_meta(status="running", dry_run=options.dry_run)
    outcome = RunOutcome(session, SessionStatus.ERROR, [], "")
    try:
        _run(app, spec, session, options, outcome)
    except VmRepairError as exc:
        stage = getattr(exc, "stage", None) or (session.timeline[-1].name if session.timeline else "start")
        outcome.status = SessionStatus.ERROR
        outcome.summary = f"{stage}: {exc.message}" + (f" (remedy: {exc.remedy})" if exc.remedy else "")
        session.event(stage, "error", error=type(exc).__name__, message=exc.message)
    session.set_meta(issues=[i.as_dict() for i in outcome.issues], components=outcome.details)
    session.finish(outcome.status, outcome.summary)
    with contextlib.suppress(VmRepairError, OSError):
        outcome.report = str(write_report(session.dir))
    session.set_meta(report=outcome.report, exit_code=outcome.exit_code)
    return outcome


def _run(app: App, spec: TargetSpec, session: Session, options: RunOptions, outcome: RunOutcome) -> None:
    with session.stage("connect"):
        try:
            transport = open_target(app, spec)
            transport.check(["true"], timeout=30)
        except (ConnectError, TransportError) as exc:
            raise PipelineError(f"target {spec} is unreachable: {exc.message}", stage="connect",
                                remedy="check that the target is up and its host key is pinned") from exc
    agent = RemoteAgent(transport, timeout=app.settings.repair.step_timeout_s)
    probes = DetectorProbes(app.settings.watch, transport, agent)
    with session.stage("detect") as st:
        report = probes.detect()
        session.write_json("detect", report.as_dict())
        outcome.issues = list(report.issues)
        st.detail = f"{len(report.issues)} issue(s)"
    if not outcome.issues:
        outcome.status, outcome.summary = SessionStatus.HEALTHY, "all watched components pass their probes"
        return
    ctx = RunContext(app, spec, session, transport, agent, probes, options)
    statuses = []
    for primary, related in triage.group_issues(outcome.issues):
        detail = escalate.repair_issue(ctx, primary, related)
        outcome.details.append(detail)
        statuses.append(SessionStatus(detail["status"]))
    outcome.status = max(statuses, key=_SEVERITY.index)
    outcome.summary = "; ".join(f"{d['component']}: {d['status']} ({d['summary']})" for d in outcome.details)
