"""How the repair of one issue ended: :class:`IssueOutcome`, the only thing the driver returns per issue.

Its ``status`` is the session's status enum; whether the next validated strategy may be tried is the
:attr:`IssueOutcome.is_retryable` property (the target was restored cleanly after this strategy failed
there), not a key in a dict. :meth:`IssueOutcome.as_dict` is the run's ``components`` entry (session.json,
the report, ``--json``); its keys are the documented ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.model import Issue, SessionStatus
from orchestrator.reboot.executor import RebootOutcome

#: How several issue outcomes combine into the run's status: the worst wins.
SEVERITY = (SessionStatus.HEALTHY, SessionStatus.REPAIRED, SessionStatus.PENDING_REBOOT,
            SessionStatus.NOT_REPRODUCED, SessionStatus.NOT_REPAIRED, SessionStatus.ERROR)


@dataclass(frozen=True)
class IssueOutcome:
    issue: Issue
    status: SessionStatus
    summary: str
    strategy: str | None = None
    txn: str | None = None
    backup: str | None = None
    package: str | None = None
    support_ref: str | None = None
    #: This strategy failed on the target (apply or verification after the boot) and the target was
    #: restored cleanly: the next validated strategy may be tried within the attempt budget.
    restored: bool = False
    in_place: bool = False
    #: A drift reported by design and never repaired (``model.REPORT_ONLY`` evidence): its status is
    #: not_repaired, but readers are told it was reported, not that a repair failed.
    report_only: bool = False
    dry_run: bool = False
    #: The attempt budget is spent: the host stays up, degraded, and a person takes over.
    degraded: bool = False
    policy: str | None = None
    note: str | None = None
    #: How the reboot that was to prove this fix ended (verified, rolled back ...).
    reboot: RebootOutcome | None = None
    manual_steps: tuple[str, ...] = ()
    #: Earlier strategies of this issue that were applied and rolled back, oldest first.
    attempts: tuple[IssueOutcome, ...] = field(default=())

    @property
    def is_retryable(self) -> bool:
        return self.restored and self.strategy is not None

    def after(self, earlier: list[IssueOutcome]) -> IssueOutcome:
        """This outcome, recording the strategies rolled back before it."""
        return replace(self, attempts=(*earlier, self)) if earlier else self

    def brief(self) -> dict[str, Any]:
        return {k: v for k, v in (("strategy", self.strategy), ("status", str(self.status)),
                                  ("summary", self.summary), ("txn", self.txn)) if v is not None}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"component": self.issue.component, "issue": self.issue.id,
                               "status": str(self.status), "summary": self.summary}
        optional: dict[str, Any] = {
            "strategy": self.strategy, "txn": self.txn, "backup": self.backup, "package": self.package,
            "support_ref": self.support_ref, "policy": self.policy, "note": self.note,
            "reboot": None if self.reboot is None else self.reboot.as_dict()}
        out.update({k: v for k, v in optional.items() if v is not None})
        for flag in ("in_place", "report_only", "dry_run", "degraded"):
            if getattr(self, flag):
                out[flag] = True
        if self.manual_steps:
            out["manual_steps"] = list(self.manual_steps)
        if self.attempts:
            out["attempts"] = [a.brief() for a in self.attempts]
        return out


def worst(statuses: list[SessionStatus]) -> SessionStatus:
    return max(statuses, key=SEVERITY.index)
