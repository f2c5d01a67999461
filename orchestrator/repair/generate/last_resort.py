"""Family ``last-resort``: restart the component's unit (reset-failed, restart, wait until it stays
up). No evidence needed, so it is ranked after every other strategy that keeps data
(:attr:`~orchestrator.repair.rank.Matched.last_resort`)."""

from __future__ import annotations

from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups
from orchestrator.repair.generate.proposal import Proposal
from orchestrator.repair.generate.situation import Situation, quote

FAMILY = "last-resort"
KINDS = frozenset({IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.HTTP_DOWN, IssueKind.PORT_DOWN,
                   IssueKind.CONFIG_INVALID, IssueKind.PERMISSIONS, IssueKind.PATH_MISSING,
                   IssueKind.PACKAGE_BROKEN})


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS or not situation.units:
        return []
    unit = situation.units[0]
    return [Proposal(
        FAMILY, "restart", unit,
        f"Restart {quote(unit)} (last resort: nothing more specific validated for "
        f"{quote(situation.issue.summary)}).",
        followups.restart(unit), effectiveness=0.3, cause="restart", confidence=0.5, last_resort=True)]
