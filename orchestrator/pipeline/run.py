"""`vmrepair run`: the whole repair of one target, as a session with evidence.

The target is only *read* until a fix has been reproduced, repaired and validated in a troubleshooting
VM; then it is changed once, through a fix package with a verified backup, and validated again. Any
failure before that point leaves the target untouched. The order of the stages of one issue is
:mod:`orchestrator.pipeline.driver`'s; this module connects, detects, and combines the issues' outcomes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.detect import answer_store
from orchestrator.detect.detector import Detector
from orchestrator.discover.resolve import resolve_for, watch_summary
from orchestrator.errors import ConnectError, PipelineError, TransportError, VmRepairError
from orchestrator.metrics.detections import forget_issues, last_detection, remember_detection
from orchestrator.model import RUN_EXIT_CODES, Issue, ProbeResult, SessionStatus
from orchestrator.pipeline import driver
from orchestrator.pipeline.context import RunContext, run_notices, vm_sandbox
from orchestrator.pipeline.notices import RunNotices
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.outcome import IssueOutcome, worst
from orchestrator.pipeline.resume import resumed_from
from orchestrator.pipeline.triage import group_issues, is_report_only, will_escalate
from orchestrator.report.markdown import write_report
from orchestrator.sandbox.protocol import Sandbox, SandboxFactory
from orchestrator.session.evidence import Stage
from orchestrator.session.history import last_run_escalated
from orchestrator.session.store import Session, new_session
from orchestrator.targets.spec import TargetSpec, open_target, parse_target

__all__ = ["RunOptions", "RunOutcome", "run_repair"]

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    session: Session
    status: SessionStatus
    issues: list[Issue]
    summary: str
    report: str = ""
    outcomes: list[IssueOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return RUN_EXIT_CODES[self.status]

    @property
    def details(self) -> list[dict[str, Any]]:
        """Each issue's outcome as the run's ``components`` entries."""
        return [o.as_dict() for o in self.outcomes]

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session.id, "status": str(self.status), "summary": self.summary,
                "issues": [i.as_dict() for i in self.issues], "report": self.report,
                "session_dir": str(self.session.dir), "components": self.details}


class _Early:
    """A sandbox started before detection ends; the first round takes it, otherwise it is destroyed."""

    def __init__(self, make: SandboxFactory) -> None:
        self._make = make
        self._started: Sandbox | None = None
        self._lock = threading.Lock()
        self._starting: threading.Thread | None = None

    def start(self, session: Session, reason: str) -> None:
        self._started = self._make(session)
        self._started.start()
        session.event(Stage.SANDBOX, "started_early", reason=reason)

    def start_soon(self, session: Session, reason: str) -> None:
        """Start it in the background, once (called from a probe's thread while detection runs). A
        start that fails is recorded; the round then starts its own sandbox as usual."""
        with self._lock:
            if self._starting is not None or self._started is not None:
                return
            self._starting = threading.Thread(target=self._start_quietly, args=(session, reason),
                                              name="early-sandbox", daemon=True)
            self._starting.start()

    def _start_quietly(self, session: Session, reason: str) -> None:
        try:
            self.start(session, reason)
        except VmRepairError as exc:
            session.event(Stage.SANDBOX, "early_start_failed", error=exc.message)

    def _settled(self) -> None:
        starting = self._starting
        if starting is not None:
            starting.join()

    def factory(self, session: Session) -> Sandbox:
        self._settled()
        started, self._started = self._started, None
        return started if started is not None else self._make(session)

    def discard(self) -> None:
        self._settled()
        started, self._started = self._started, None
        if started is not None:
            with contextlib.suppress(VmRepairError):
                started.destroy()


def early_reason(app: App, spec: TargetSpec) -> str:
    """Why this run's troubleshooting VM should start before detection ends ("" to wait): the last run
    on the target needed one, or the target's last detection (the daemon's, `vmrepair detect`'s)
    left issues open, so this run is most likely a repair that will escalate. On a target with no
    such history the VM waits for detection: a healthy target never starts one."""
    if last_run_escalated(app.settings.sessions_dir, str(spec)):
        return "the last run on this target escalated"
    record = last_detection(app.settings.state_dir, spec.slug)
    if record is not None and record.issues:
        return f"the last detection on this target left {len(record.issues)} issue(s) open"
    return ""


def run_repair(app: App, target: str, options: RunOptions, *, sandbox: SandboxFactory | None = None,
               stages: driver.Stages = driver.REAL) -> RunOutcome:
    """Run the pipeline against ``target``; never raises for pipeline failures (they become status
    ``error`` with the stage named), only for invalid input (bad target syntax → ConfigError).

    ``sandbox`` and ``stages`` are seams for tests; the defaults are the real VM and stages.
    """
    spec = parse_target(target)
    session = new_session(app.settings.sessions_dir, str(spec), audit=app.audit)
    session.set_meta(status="running", dry_run=options.dry_run)
    previous = resumed_from(app.settings.sessions_dir, str(spec), current=session.id)
    if previous is not None:
        # Start-up recovery closed that run as interrupted; this one does its work again from detection.
        session.set_meta(resumed_from=previous)
        session.event("start", "resumed", resumed_from=previous)
    outcome = RunOutcome(session, SessionStatus.ERROR, [], "")
    notices = run_notices(app, session)
    try:
        _run(app, spec, session, Resolved.of(options, app.settings), outcome,
             sandbox=sandbox or vm_sandbox(app), stages=stages, notices=notices)
    except VmRepairError as exc:
        stage = getattr(exc, "stage", None) or (session.timeline[-1].name if session.timeline else "start")
        outcome.status = SessionStatus.ERROR
        outcome.summary = f"{stage}: {exc.message}" + (f" (remedy: {exc.remedy})" if exc.remedy else "")
        session.event(stage, "error", error=type(exc).__name__, message=exc.message)
        notices.run_failed(outcome.summary)
    notices.finish()
    session.set_meta(issues=[i.as_dict() for i in outcome.issues], components=outcome.details)
    session.finish(outcome.status, outcome.summary)
    with contextlib.suppress(VmRepairError, OSError):
        outcome.report = str(write_report(session.dir))
    session.set_meta(report=outcome.report, exit_code=outcome.exit_code)
    return outcome


def run_status(outcomes: list[IssueOutcome]) -> SessionStatus:
    """The run's status: that of its repairs. Reported-only issues (host-wide state) are in the summary
    but do not decide it (a system degraded by the unit another issue names must not turn
    not_reproduced into not_repaired); a run with nothing but reported issues is not repaired."""
    acted = [o.status for o in outcomes if not is_report_only(o.issue)]
    return worst(acted) if acted else SessionStatus.NOT_REPAIRED


def _recheck_reported(probes: Detector, outcomes: list[IssueOutcome]) -> list[IssueOutcome]:
    """Report-only issues (host-wide state) probed again once another issue was repaired: a degraded
    system is often the failed unit that repair fixed. Only what now passes changes."""
    if not any(o.status is SessionStatus.REPAIRED for o in outcomes):
        return outcomes
    def cleared(item: IssueOutcome) -> bool:
        if not is_report_only(item.issue) or item.status is not SessionStatus.NOT_REPAIRED:
            return False
        try:
            return probes.run_probe(item.issue.probe).ok
        except VmRepairError:
            return False

    return [dataclasses.replace(item, status=SessionStatus.REPAIRED,
                                summary="cleared once the other issues were repaired")
            if cleared(item) else item for item in outcomes]


def _run(app: App, spec: TargetSpec, session: Session, options: Resolved, outcome: RunOutcome, *,
         sandbox: SandboxFactory, stages: driver.Stages, notices: RunNotices) -> None:
    with session.stage(Stage.CONNECT):
        try:
            transport = open_target(app, spec)
            transport.check(["true"], timeout=30)
        except (ConnectError, TransportError) as exc:
            raise PipelineError(f"target {spec} is unreachable: {exc.message}", stage=Stage.CONNECT,
                                remedy="check that the target is up and its host key is pinned") from exc
    agent = RemoteAgent(transport, timeout=app.settings.repair.step_timeout_s)
    early = _Early(sandbox)
    try:
        reason = early_reason(app, spec)
        if reason:
            # This run will most likely need a sandbox: boot it while detection runs.
            early.start(session, reason)
        with session.stage(Stage.DETECT) as st:
            watch = resolve_for(app.settings, app.state, spec.slug, transport, agent)
            probes = Detector(watch.watch, transport, agent,
                              answers=answer_store.for_target(app.settings.state_dir, spec.slug))
            def boot_if_escalating(result: ProbeResult) -> None:
                # The first failure no restart can fix: this run will need the VM, so it boots while
                # the rest of the round runs (the round's end can be seconds away: pkgmeta, dpkg).
                if will_escalate(result):
                    early.start_soon(session, f"detection found {result.probe} failing ({result.kind}); "
                                              "a restart cannot fix it")

            report = probes.run(on_result=boot_if_escalating)
            session.write_json("detect", report.as_dict() | {"watch": watch_summary(watch)})
            outcome.issues = list(report.issues)
            st.detail = f"{len(report.issues)} issue(s)"
        remember_detection(app.settings.state_dir, spec.slug, str(spec), report.issues)
        if not outcome.issues:
            outcome.status = SessionStatus.HEALTHY
            outcome.summary = "all watched components pass their probes"
            return
        passing = frozenset(r.probe for r in report.results if r.ok and not r.is_unavailable)
        ctx = RunContext(app, spec, session, transport, agent, probes, options, early.factory, passing,
                         notices)
        for primary, related in group_issues(outcome.issues):
            outcome.outcomes.append(driver.repair_issue(ctx, primary, related, stages))
        outcome.outcomes = _recheck_reported(probes, outcome.outcomes)
        for reported in outcome.outcomes:
            if is_report_only(reported.issue):
                notices.issue_done(reported)
    finally:
        early.discard()
    outcome.status = run_status(outcome.outcomes)
    # Repaired means verified on the target: those issues are no longer open (for metrics).
    forget_issues(app.settings.state_dir, spec.slug,
                  {o.issue.id for o in outcome.outcomes if o.status is SessionStatus.REPAIRED})
    # A report-only outcome's summary already says "reported, not repaired: why".
    outcome.summary = "; ".join(f"{o.issue.component}: {o.summary}" if o.report_only
                                else f"{o.issue.component}: {o.status} ({o.summary})"
                                for o in outcome.outcomes)
