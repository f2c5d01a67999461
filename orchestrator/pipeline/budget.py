"""The attempt budget of one issue on one target: which strategies already failed there, and what is
left when the budget is spent (degraded but up, a person takes over)."""

from __future__ import annotations

import datetime as dt

from orchestrator.model import Issue, SessionStatus
from orchestrator.notify.event import EventKind
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.session.evidence import Stage
from orchestrator.state.transactions import OPERATOR_ROLLBACK, TransactionStore
from orchestrator.timestamps import format_timestamp

#: How long a strategy rolled back on a target stays excluded for the same issue there.
PRIOR_FAILURE_HORIZON = dt.timedelta(hours=24)


def prior_failures(ctx: RunContext, issue: Issue) -> set[str]:
    """Strategies already rolled back on this target for this issue (today): not tried again, and
    counted against the budget, so a deferred (window) verification failure is remembered too."""
    # Compared as text: every stored form (old +00:00 ones too) agrees with this one to the second.
    since = format_timestamp(dt.datetime.now(dt.UTC) - PRIOR_FAILURE_HORIZON)
    store = TransactionStore(ctx.app.state)
    # An operator's `vmrepair fixes rollback` says nothing about whether the strategy works.
    return {t.strategy for t in store.find(states=("rolled_back",), target=str(ctx.spec))
            if t.issue_id == issue.fingerprint and t.created_at >= since and t.strategy
            and not any(s["step"] == OPERATOR_ROLLBACK for s in store.steps(t.id))}


def spent(ctx: RunContext, issue: Issue, failed: set[str], tried: list[IssueOutcome]) -> IssueOutcome:
    """Degraded but up: the last fix was rolled back, the host stays reachable, a person takes over."""
    budget = ctx.options.attempt_budget
    txns = [t for t in TransactionStore(ctx.app.state).find(target=str(ctx.spec))
            if t.issue_id == issue.fingerprint]
    support_ref = txns[0].support_ref if txns else "VMR-" + issue.fingerprint[:8].upper()
    steps = (f"strategies tried and rolled back: {', '.join(sorted(failed))}",
             f"inspect the sessions: `vmrepair sessions` and `vmrepair fixes list --target {ctx.spec}`",
             f"fix {issue.subject} by hand; vmrepair will not apply another fix for this issue today",
             f"quote support reference {support_ref}")
    ctx.notify.emit(EventKind.BUDGET_EXHAUSTED, f"{issue.component}: {issue.summary}: attempt budget of "
                     f"{budget} spent; the host stays up in a degraded state", component=issue.component,
                     issue=issue.id, txn_id=txns[0].id if txns else None, support_ref=support_ref,
                     manual_steps=list(steps), tried=sorted(failed))
    ctx.session.event(Stage.REPAIR, "budget_exhausted", budget=budget, failed=sorted(failed),
                      support_ref=support_ref)
    return IssueOutcome(issue, SessionStatus.NOT_REPAIRED,
                        f"attempt budget ({budget}) spent: {', '.join(sorted(failed))} rolled back; host "
                        f"left up and degraded; support reference {support_ref}", degraded=True,
                        support_ref=support_ref, manual_steps=steps, attempts=tuple(tried))
