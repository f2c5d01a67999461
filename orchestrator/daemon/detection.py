"""The detection job: probe the target, track its issues, and act on them by the daemon's policy.

``auto-repair``  run the repair pipeline (``run_repair`` with ``assume_yes``) on the target;
``ask``          record new issues as ``pending``, audit and announce them; never touch the target;
``detect-only``  record them only.

Repairs are held back (issues are only ``recorded``) while :attr:`DaemonState.repairs_allowed` is
false, i.e. after a start-up recovery that failed: the target may hold a half-applied fix. An issue a
repair could not fix is not repaired again on every detection (each attempt boots troubleshooting
VMs); it is retried once ``retry_after_s`` has passed, or as soon as it clears and comes back.
Issues appearing and clearing are audited once each, not on every run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.config.daemon import DaemonPolicy
from orchestrator.daemon.state import PENDING, RECORDED, REPAIRING, DaemonState, TrackedIssue
from orchestrator.detect.report import DetectionReport
from orchestrator.model import Issue, SessionStatus
from orchestrator.notify.event import Emitter, Event, EventKind

log = logging.getLogger(__name__)

#: A repair that did not run (another vmrepair process holds the state lock): due again next time.
DEFERRED = "deferred"
#: Outcomes after which an issue waits ``retry_after_s`` before the next automatic repair.
_UNFIXED = frozenset({str(SessionStatus.NOT_REPAIRED), str(SessionStatus.NOT_REPRODUCED),
                      str(SessionStatus.ERROR)})


@dataclass(frozen=True)
class RepairResult:
    """What the daemon keeps of one ``run_repair``."""

    status: str
    session: str
    summary: str
    #: (component, status) of each issue the run handled; the run's status says it for all when empty.
    components: tuple[tuple[str, str], ...] = ()

    def by_component(self, components: list[str]) -> dict[str, str]:
        """How the run ended for each of ``components``: its worst issue's status, else the run's."""
        ended: dict[str, str] = {}
        for component, status in self.components:
            if ended.get(component) != str(SessionStatus.NOT_REPAIRED):
                ended[component] = status
        return {c: ended.get(c, self.status) for c in components}


class DetectionJob:
    """A :class:`~orchestrator.daemon.scheduler.Job`; ``detect`` and ``repair`` reach the target."""

    name = "detect"

    def __init__(
        self,
        *,
        interval_s: float,
        target: str,
        policy: DaemonPolicy,
        detect: Callable[[], DetectionReport],
        repair: Callable[[], RepairResult],
        state: DaemonState,
        audit: AuditSink,
        announce: Callable[[str], object] = lambda _text: None,
        retry_after_s: float = 3600.0,
        notify: Emitter | None = None,
        on_repair: Callable[[str, str], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._target, self._policy = target, policy
        self._detect, self._repair = detect, repair
        self._state, self._audit, self._announce = state, audit, announce
        self._retry_after_s = retry_after_s
        self._notify = notify
        #: Told (component, status) after each repair run: the daemon's failed-repair count.
        self._on_repair = on_repair

    def run(self) -> None:
        """Detect, then act by policy.

        Raises:
            TransportError: the target cannot be reached (probes that merely cannot run there, such
                as systemd checks without systemd, come back as unavailable instead).
            StateError, AuditError: the repair's session or the audit record cannot be written.
        """
        began = time.monotonic()
        report = self._detect()
        acting = self._policy == "auto-repair" and self._state.repairs_allowed
        new_state = PENDING if self._policy == "ask" else RECORDED
        new, cleared = self._state.record_detection(
            report.issues, duration_s=time.monotonic() - began, probes=len(report.results),
            unavailable=[r.probe for r in report.unavailable], new_state=new_state)
        for issue in new:
            self._audit_issue("issue_detected", issue, new_state)
        for issue in cleared:
            self._audit_issue("issue_cleared", issue, "cleared")
        if self._policy == "ask" and new:
            self._announce_pending()
            self._notify_pending(new)
        if acting:
            self._repair_due()
        self._announce(f"watching {self._target} ({self._policy}): {len(report.issues)} issue(s)")

    def _repair_due(self) -> None:
        now = self._state.clock()
        due = [t for t in self._state.tracked() if _is_due(t, now, self._retry_after_s)]
        if not due:
            return
        ids = [t.issue.id for t in due]
        self._state.mark_issues(ids, REPAIRING)
        self._announce(f"repairing {self._target}: {', '.join(ids)}")
        try:
            result = self._repair()
        except BaseException:
            # The pipeline reports its own failures as status "error"; anything raised here is
            # unexpected. Leave the issues retryable rather than stuck in "repairing".
            self._state.mark_issues(ids, str(SessionStatus.ERROR))
            self._state.record_repair(str(SessionStatus.ERROR))
            raise
        if result.status == DEFERRED:
            self._state.mark_issues(ids, RECORDED)
            self._audit.record("repair_deferred", component="daemon", status=DEFERRED,
                               details={"reason": result.summary, "issues": ids, "target": self._target})
            log.warning("repair of %s deferred: %s", self._target, result.summary)
            return
        self._state.record_repair(result.status)
        self._state.mark_issues(ids, result.status, session=result.session)
        ended = result.by_component(sorted({t.issue.component for t in due}))
        for component, status in ended.items():
            if self._on_repair is not None:
                self._on_repair(component, status)
        for component in sorted({t.issue.component for t in due}):
            self._audit.record("repair", component=component, status=result.status, durable=True,
                               details={"session": result.session, "summary": result.summary,
                                        "issues": [i for i in ids if i.startswith(component + ":")],
                                        "target": self._target})
        if result.status == str(SessionStatus.ERROR):
            log_error(self._audit, "daemon", f"repair of {self._target} failed: {result.summary}",
                      session=result.session)
        log.info("repair of %s ended %s (session %s)", self._target, result.status, result.session)

    def _announce_pending(self) -> None:
        pending = [t.issue.id for t in self._state.tracked() if t.state == PENDING]
        text = (f"{len(pending)} issue(s) on {self._target} wait for approval; "
                f"repair with `vmrepair run --target {self._target}`")
        log.warning("%s: %s", text, ", ".join(pending))
        self._announce(text)

    def _notify_pending(self, new: list[Issue]) -> None:
        """One ``awaiting_approval`` event per issue new under ``ask`` (never again while it stays)."""
        if self._notify is None:
            return
        remedy = f"vmrepair run --target {self._target}"
        for issue in new:
            self._notify.emit(Event(EventKind.AWAITING_APPROVAL, self._target,
                                    f"{issue.component}: {issue.summary}: waits for approval; repair with "
                                    f"`{remedy}`", component=issue.component,
                                    details={"issue": issue.id, "kind": str(issue.kind),
                                             "severity": str(issue.severity), "probe": issue.probe,
                                             "remedy": remedy, "policy": self._policy},
                                    is_audited=True))

    def _audit_issue(self, event: str, issue: Issue, status: str) -> None:
        details: dict[str, object] = {"issue": issue.id, "kind": str(issue.kind),
                                      "severity": str(issue.severity), "summary": issue.summary,
                                      "probe": issue.probe, "policy": self._policy, "target": self._target}
        if status == PENDING:
            details["remedy"] = f"vmrepair run --target {self._target}"
        self._audit.record(event, component=issue.component, status=status, details=details)


def _is_due(tracked: TrackedIssue, now: float, retry_after_s: float) -> bool:
    if tracked.state in _UNFIXED:
        return now - tracked.state_since >= retry_after_s
    # New, or "repaired" yet detected again (the fault came back): repair it (again).
    return tracked.state != REPAIRING
