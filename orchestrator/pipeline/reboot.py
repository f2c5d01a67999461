"""Stage reboot: after a fix that needs a boot is applied, request the reboot by policy and, for
``automatic``, reboot, verify after the boot and commit or roll back right here.

A fix that could make the target unbootable is rebooted automatically only where a boot fallback
exists (a ``vm:`` target's hypervisor snapshot taken just before applying). Elsewhere a configured
``automatic`` becomes ``prompt`` unless the operator said ``--reboot-policy automatic`` on this run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.config.reboot import RebootPolicy
from orchestrator.model import Issue
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.values import Applied, RebootEnd, RebootStep
from orchestrator.reboot.executor import run_due_reboots
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.session.evidence import Evidence, Stage


def effective_policy(ctx: RunContext, plan: VerifyPlan) -> tuple[RebootPolicy, str | None]:
    """The policy for this reboot and, when it differs from what was asked, why."""
    asked = ctx.options.reboot_policy
    if asked == "automatic" and plan.snapshot is None and not ctx.options.reboot_policy_explicit:
        return "prompt", ("configured `automatic`, but this target has no boot fallback: waiting for the "
                          "operator (`vmrepair reboot now`), or pass --reboot-policy automatic")
    return asked, None


def reboot(ctx: RunContext, issue: Issue, applied: Applied, *,
           sleep: Callable[[float], None] = time.sleep) -> RebootStep:
    """Raises: StateError (the reboot record cannot be written)."""
    app, session, txn = ctx.app, ctx.session, applied.txn
    policy, downgraded = effective_policy(ctx, applied.plan)
    with session.stage(Stage.REBOOT) as st:
        notice = ctx.options.reboot_notice_s
        record = scheduler_for(app).request(
            txn.target, txn_id=txn.id, reason=f"fix {txn.id} ({txn.strategy}) for {issue.component} needs "
            "a reboot", policy=policy, notice_s=notice)
        session.event(Stage.REBOOT, "requested", policy=policy, downgraded=downgraded, record=record.id)
        if policy != "automatic":
            st.status, st.detail = "skipped", f"policy {policy}: waiting ({downgraded or 'as configured'})"
            how = (f"`vmrepair reboot now --target {txn.target}`" if policy == "prompt"
                   else "the next maintenance window (`vmrepair reboot status`)")
            return RebootStep(RebootEnd.PENDING, policy, downgraded, how, when=record.when)
        if record.policy != "automatic":
            # Joined an open reboot that someone else scheduled (and people were told about).
            st.status, st.detail = "skipped", f"joined the open {record.policy} reboot {record.id}"
            return RebootStep(RebootEnd.JOINED, record.policy, how=f"{record.policy}, {record.when}",
                              when=record.when)
        if notice > 0:
            session.event(Stage.REBOOT, "notice", seconds=notice)
            sleep(notice)
        outcomes = [o for o in run_due_reboots(app, target=txn.target) if o.txn_id == txn.id]
        if not outcomes:
            st.status, st.detail = "failed", "the scheduler did not release the reboot"
            return RebootStep(RebootEnd.NOT_DUE, policy)
        outcome = outcomes[0]
        session.write_json(Evidence.REBOOT.file(issue.component), outcome.as_dict())
        st.detail = f"{outcome.status}: {outcome.message}"
        if not outcome.is_verified:
            st.status = "failed"
    return RebootStep(RebootEnd.VERIFIED if outcome.is_verified else RebootEnd.FAILED, policy,
                      outcome=outcome)
