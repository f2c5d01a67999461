"""After a fix that needs a reboot is applied: schedule the reboot by policy, and for ``automatic``
reboot, verify and commit or roll back right here.

A fix that could make the target unbootable is rebooted automatically only where a boot fallback
exists (a ``vm:`` target's hypervisor snapshot taken just before applying). Elsewhere a configured
``automatic`` becomes ``prompt`` unless the operator said ``--reboot-policy automatic`` on this run.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.config.reboot import RebootPolicy
from orchestrator.model import Issue, SessionStatus
from orchestrator.pipeline.context import RunContext, component_result
from orchestrator.reboot.executor import RebootOutcome, run_due_reboots
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.state.transactions import TxnRecord


def effective_policy(ctx: RunContext, plan: VerifyPlan) -> tuple[RebootPolicy, str | None]:
    """The policy for this reboot and, when it differs from what was asked, why."""
    asked: RebootPolicy = ctx.options.reboot_policy or ctx.app.settings.reboot.policy
    if asked == "automatic" and plan.snapshot is None and ctx.options.reboot_policy is None:
        return "prompt", ("configured `automatic`, but this target has no boot fallback: waiting for the "
                          "operator (`vmrepair reboot now`), or pass --reboot-policy automatic")
    return asked, None


def schedule_and_verify(ctx: RunContext, issue: Issue, txn: TxnRecord, plan: VerifyPlan) -> dict[str, Any]:
    """Returns the component result: repaired (verified after the boot), pending_reboot, or a failure
    with ``retry: True`` when the fix was rolled back cleanly (the next strategy may be tried)."""
    app, session = ctx.app, ctx.session
    policy, downgraded = effective_policy(ctx, plan)
    scheduler = scheduler_for(app)
    with session.stage("reboot") as st:
        notice = (ctx.options.reboot_notice_s if ctx.options.reboot_notice_s is not None
                  else app.settings.reboot.notice_s)
        record = scheduler.request(txn.target, txn_id=txn.id, reason=f"fix {txn.id} ({txn.strategy}) "
                                   f"for {issue.component} needs a reboot", policy=policy, notice_s=notice)
        session.event("reboot", "requested", policy=policy, downgraded=downgraded, record=record.id)
        if policy != "automatic":
            st.status, st.detail = "skipped", f"policy {policy}: waiting ({downgraded or 'as configured'})"
            how = ("`vmrepair reboot now --target " + txn.target + "`" if policy == "prompt"
                   else "the next maintenance window (`vmrepair reboot status`)")
            return _result(issue, SessionStatus.PENDING_REBOOT,
                           f"{txn.strategy} applied and verified as far as possible without a boot; "
                           f"reboot pending ({policy}): {how}", txn, policy=policy,
                           note=downgraded)
        if record.policy != "automatic":
            # Joined an open reboot that someone else scheduled (and people were told about).
            st.status, st.detail = "skipped", f"joined the open {record.policy} reboot {record.id}"
            return _result(issue, SessionStatus.PENDING_REBOOT, f"{txn.strategy} applied; it joins the "
                           f"reboot already scheduled ({record.policy}, {record.when})", txn,
                           policy=record.policy)
        if notice > 0:
            session.event("reboot", "notice", seconds=notice)
            time.sleep(notice)
        outcomes = [o for o in run_due_reboots(app, target=txn.target) if o.txn_id == txn.id]
        if not outcomes:
            st.status, st.detail = "failed", "the scheduler did not release the reboot"
            return _result(issue, SessionStatus.PENDING_REBOOT, "reboot scheduled but not yet due", txn,
                           policy=policy)
        outcome = outcomes[0]
        session.write_json(f"reboot-{issue.component}", outcome.as_dict())
        st.detail = f"{outcome.status}: {outcome.message}"
        if not outcome.is_verified:
            st.status = "failed"
    return _from_outcome(issue, txn, outcome)


def _from_outcome(issue: Issue, txn: TxnRecord, outcome: RebootOutcome) -> dict[str, Any]:
    if outcome.is_verified:
        return _result(issue, SessionStatus.REPAIRED, f"{txn.strategy} applied, target rebooted and verified "
                       "after the boot", txn, reboot=outcome.as_dict())
    retry = outcome.status in ("rolled_back", "reverted")
    status = SessionStatus.NOT_REPAIRED if retry else SessionStatus.ERROR
    return _result(issue, status, f"{txn.strategy} failed after the reboot ({outcome.status}): "
                   f"{outcome.message}", txn, reboot=outcome.as_dict(), retry=retry)


def _result(
    issue: Issue, status: SessionStatus, summary: str, txn: TxnRecord, **extra: Any
) -> dict[str, Any]:
    return component_result(issue, status, summary, strategy=txn.strategy, txn=txn.id,
                            support_ref=txn.support_ref, backup=txn.backup_dir, **extra)
