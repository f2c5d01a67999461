"""What one repair run tells people: :class:`RunNotices`, built once per run and reached by every
stage through the run context. It turns the driver's values into notification events and keeps the
``notify.troubleshooting`` preference: ``immediate`` emits ``troubleshooting_started`` as each
escalation to a troubleshooting VM starts, ``summary`` one ``troubleshooting_summary`` at the end of
the run, ``none`` neither. Emitting never raises and never waits for a receiver (the hub's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config.notify import TroubleshootingPreference
from orchestrator.model import Issue, SessionStatus
from orchestrator.notify.event import Emitter, Event, EventKind
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.pipeline.values import Applied, RebootEnd, RebootStep

#: How an issue's outcome is announced. Absent: said by its own stage (pending_reboot by the reboot
#: step, a spent budget as budget_exhausted) or nothing to say (healthy).
_OUTCOME_KINDS = {SessionStatus.REPAIRED: EventKind.REPAIRED,
                  SessionStatus.NOT_REPAIRED: EventKind.NOT_REPAIRED,
                  SessionStatus.NOT_REPRODUCED: EventKind.NOT_REPRODUCED,
                  SessionStatus.ERROR: EventKind.ERROR}


@dataclass
class _Escalation:
    component: str
    issue: str
    rounds: int = 1
    status: str = "running"
    summary: str = ""


@dataclass
class RunNotices:
    """The events of the run of session ``session_id`` on ``target``."""

    hub: Emitter
    target: str
    session_id: str
    report: Path
    troubleshooting: TroubleshootingPreference = "summary"
    _escalations: dict[str, _Escalation] = field(default_factory=dict)

    def emit(self, kind: EventKind, summary: str, *, component: str = "", **details: Any) -> None:
        self.hub.emit(Event(kind, self.target, summary, component=component, session_id=self.session_id,
                            details={k: v for k, v in details.items() if v is not None}))

    # -- the stages ------------------------------------------------------------------------------
    def troubleshooting_started(self, issue: Issue, *, attempt: int, exclude: frozenset[str]) -> None:
        """A round of the repair of ``issue`` starts its troubleshooting VM (an escalation)."""
        known = self._escalations.get(issue.id)
        if known is None:
            self._escalations[issue.id] = _Escalation(issue.component, issue.id)
        else:
            known.rounds += 1
        if self.troubleshooting == "immediate":
            again = f" (round {attempt}; not again: {', '.join(sorted(exclude))})" if exclude else ""
            self.emit(EventKind.TROUBLESHOOTING_STARTED, f"{issue.component}: {issue.summary}: reproducing "
                      f"in a troubleshooting VM{again}", component=issue.component, issue=issue.id,
                      probe=issue.probe, attempt=attempt, excluded=sorted(exclude) or None)

    def rolled_back(self, issue: Issue, applied: Applied) -> None:
        """The fix failed its validation on the target and was restored (or the restore failed)."""
        txn = applied.txn
        ok = applied.status == "rolled_back"
        summary = (f"{issue.component}: fix {txn.id} ({txn.strategy}) failed on {self.target} and was rolled "
                   f"back from {txn.backup_dir}" if ok else
                   f"{issue.component}: fix {txn.id} ({txn.strategy}) failed on {self.target} and its "
                   f"rollback failed ({applied.status}); see {txn.backup_dir}")
        self.emit(EventKind.ROLLBACK, summary, component=issue.component, issue=issue.id,
                  status=applied.status, txn_id=txn.id, strategy=txn.strategy, backup=txn.backup_dir,
                  support_ref=None if ok else txn.support_ref)

    def reboot_pending(self, issue: Issue, applied: Applied, step: RebootStep) -> None:
        """The fix waits for a reboot (``prompt`` or ``window``, or it joined one already planned)."""
        if step.end not in (RebootEnd.PENDING, RebootEnd.JOINED):
            return   # done or failed here: the reboot code announced it, the outcome follows
        txn = applied.txn
        when = step.when or step.how
        self.emit(EventKind.PENDING_REBOOT, f"{issue.component}: {txn.strategy} applied on {self.target}; "
                  f"reboot pending ({step.policy}): {when}", component=issue.component, issue=issue.id,
                  txn_id=txn.id, strategy=txn.strategy, policy=step.policy, reboot_when=step.when or None,
                  how=step.how or None, note=step.note, joined=step.end is RebootEnd.JOINED or None)

    def issue_done(self, outcome: IssueOutcome) -> None:
        """How the repair of one issue ended."""
        known = self._escalations.get(outcome.issue.id)
        if known is not None:
            known.status, known.summary = str(outcome.status), outcome.summary
        kind = _OUTCOME_KINDS.get(outcome.status)
        if kind is None or outcome.degraded:
            return
        issue = outcome.issue
        details: dict[str, Any] = {"issue": issue.id, "probe": issue.probe, "strategy": outcome.strategy,
                                   "txn_id": outcome.txn, "support_ref": outcome.support_ref,
                                   "report": str(self.report)}
        if kind is EventKind.NOT_REPAIRED:
            details |= {"dry_run": outcome.dry_run or None, "package": outcome.package,
                        "manual_steps": self.manual_steps(outcome)}
        self.emit(kind, f"{issue.component}: {issue.summary}: {outcome.summary}", component=issue.component,
                  **details)

    def manual_steps(self, outcome: IssueOutcome) -> list[str]:
        """What a person can do next: the outcome's own steps, then the report's *Manual steps*."""
        steps = list(outcome.manual_steps)
        if outcome.dry_run or (outcome.package and outcome.strategy and not outcome.txn):
            steps.append(f"review the validated fix in {outcome.package} and apply it with "
                         f"`vmrepair run --target {self.target}`")
        steps += [f"read the report {self.report} (section Manual steps: what was tried and the commands "
                  "a person would run)",
                  f"after a change by hand, run `vmrepair detect --target {self.target}`"]
        return steps

    def run_failed(self, summary: str) -> None:
        """The run stopped with an error before its issues' outcomes (a stage raised)."""
        self.emit(EventKind.ERROR, summary, report=str(self.report))

    def finish(self) -> None:
        """End of the run: the troubleshooting summary, when that is the preference."""
        if self.troubleshooting != "summary" or not self._escalations:
            return
        done = list(self._escalations.values())
        self.emit(EventKind.TROUBLESHOOTING_SUMMARY,
                  f"{len(done)} issue(s) escalated to a troubleshooting VM: "
                  + "; ".join(f"{e.component}: {e.status}" for e in done),
                  escalations=[{"component": e.component, "issue": e.issue, "rounds": e.rounds,
                                "status": e.status, "summary": e.summary} for e in done],
                  report=str(self.report))
