"""The repair of one issue, top to bottom. The only place that knows the order of the stages.

    triage → (restart in place) → [ capture → sandbox → reproduce → diagnose → attempts → package →
    gate → apply → reboot → verify ] → next strategy within the attempt budget, or done

Each stage is a function that takes typed values and returns one (:mod:`.values`); none calls the next.
The bracketed part is one *round*: its own troubleshooting sandbox, always destroyed. A round whose fix
failed on the target and was restored cleanly (:attr:`IssueOutcome.is_retryable`) is followed by another
round that excludes the strategies already rolled back, until the budget is spent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from orchestrator.capture.snapshot import Capture
from orchestrator.detect.answer_store import for_sandboxes
from orchestrator.detect.detector import Detector
from orchestrator.errors import VmRepairError
from orchestrator.model import REPORT_ONLY, Component, Issue, SessionStatus
from orchestrator.pipeline import apply, attempts, budget, package, reboot, reproduce, triage
from orchestrator.pipeline.attempts import Diagnosed
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.pipeline.triage import DISK_KINDS, TriageDecision, components_for, is_report_only
from orchestrator.pipeline.values import (
    Applied,
    Built,
    RebootEnd,
    RebootStep,
    Refused,
    Reproduction,
    Winner,
    Workbench,
)
from orchestrator.sandbox.protocol import ImportReport, Sandbox
from orchestrator.session.evidence import Stage
from orchestrator.validate.probes import ProbeRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stages:
    """The stage functions the driver calls: the real ones by default, scripted ones in unit tests."""

    decide: Callable[..., TriageDecision] = triage.triage
    in_place: Callable[..., bool] = triage.in_place
    capture: Callable[..., Capture] = reproduce.capture
    prepare: Callable[..., ImportReport] = reproduce.prepare
    reproduce: Callable[..., Reproduction] = reproduce.reproduce
    diagnose: Callable[..., Diagnosed] = attempts.diagnose
    attempt: Callable[..., Winner | None] = attempts.run_attempts
    build: Callable[..., Built | Refused] = package.build
    gate: Callable[..., IssueOutcome | None] = apply.gate
    apply_fix: Callable[..., Applied] = apply.apply
    drop_fallback: Callable[[RunContext, str], None] = apply.drop_fallback
    reboot: Callable[..., RebootStep] = reboot.reboot
    prior_failures: Callable[[RunContext, Issue], set[str]] = budget.prior_failures
    budget_spent: Callable[..., IssueOutcome] = budget.spent
    #: The probes of the sandbox (the detect stage's Detector over the sandbox's transport).
    sandbox_probes: Callable[[RunContext, Sandbox], ProbeRunner] = (
        lambda ctx, sandbox: Detector(ctx.watch, sandbox.transport, sandbox.agent,
                                      answers=for_sandboxes(ctx.app.settings.state_dir)))


REAL = Stages()


def repair_issue(ctx: RunContext, issue: Issue, related: tuple[Issue, ...],
                 stages: Stages = REAL) -> IssueOutcome:
    outcome = _repair(ctx, issue, related, stages)
    if not is_report_only(issue):
        # Report-only issues are announced by the run, after their re-check (see pipeline.run).
        ctx.notify.issue_done(outcome)
    return outcome


def _repair(ctx: RunContext, issue: Issue, related: tuple[Issue, ...], stages: Stages) -> IssueOutcome:
    if is_report_only(issue):
        # The probe's own reason when it gave one (a drift that may be intended), else the host's.
        why = issue.evidence.get(REPORT_ONLY) or ("host-wide state a troubleshooting VM cannot reproduce "
                                                  "and no strategy repairs; see the evidence and remedy")
        return IssueOutcome(issue, SessionStatus.NOT_REPAIRED, f"reported, not repaired: {why}",
                            report_only=True)
    components = components_for(ctx.watch, issue)
    own = components[0] if issue.kind not in DISK_KINDS else None
    decision = stages.decide(ctx, issue, related, own)
    if decision.in_place and own is not None and not ctx.options.dry_run \
            and stages.in_place(ctx, issue, own):
        return IssueOutcome(issue, SessionStatus.REPAIRED, "restarted in place; probes pass", in_place=True)

    failed = stages.prior_failures(ctx, issue)
    tried: list[IssueOutcome] = []
    while len(failed) < ctx.options.attempt_budget:
        outcome = _round(ctx, stages, issue, related, components, exclude=frozenset(failed),
                         attempt=len(failed) + 1)
        if not outcome.is_retryable or outcome.strategy is None:
            return outcome.after(tried)
        tried.append(outcome)
        failed.add(outcome.strategy)
        ctx.session.event(Stage.REPAIR, "retry", failed=sorted(failed), budget=ctx.options.attempt_budget)
    return stages.budget_spent(ctx, issue, failed, tried)


def _round(ctx: RunContext, stages: Stages, issue: Issue, related: tuple[Issue, ...],
           components: list[Component], *, exclude: frozenset[str], attempt: int) -> IssueOutcome:
    """One sandbox: reproduce, find a validated strategy, apply it, and reboot when it needs one."""
    sandbox = ctx.new_sandbox(ctx.session)
    sandbox.start()  # boots while the target is captured
    ctx.notify.troubleshooting_started(issue, attempt=attempt, exclude=exclude)
    try:
        captured = stages.capture(ctx, issue, related, components)
        imported = stages.prepare(ctx, sandbox, captured, issue, components)
        probes = stages.sandbox_probes(ctx, sandbox)
        reproduction = stages.reproduce(ctx, probes, issue, imported)
        if not reproduction.reproduced:
            why = reproduction.reason or f"{issue.probe} passes in the troubleshooting VM"
            return IssueOutcome(issue, SessionStatus.NOT_REPRODUCED, f"{why}; nothing applied")
        work = Workbench(sandbox, probes, captured, tuple(components), imported, reproduction.passing,
                         related=related, round_s=reproduction.round_s)
        winner = stages.attempt(ctx, work, issue, stages.diagnose(ctx, work, issue, exclude))
        if winner is None:
            return IssueOutcome(issue, SessionStatus.NOT_REPAIRED,
                                "no strategy passed validation in the troubleshooting VM; nothing applied")
        built = stages.build(ctx, work, issue, winner)
        if isinstance(built, Refused):
            return IssueOutcome(issue, SessionStatus.NOT_REPAIRED, f"{winner.strategy} validated in the VM "
                                f"but cannot be packaged safely: {built.reason}", strategy=winner.strategy)
        refusal = stages.gate(ctx, issue, winner, built)
        if refusal is not None:
            return refusal
        applied = stages.apply_fix(ctx, work, issue, winner, built, attempt=attempt)
    finally:
        _destroy(ctx, sandbox)
    if applied.status == "applied" and applied.needs_reboot:
        step = stages.reboot(ctx, issue, applied)
        ctx.notify.reboot_pending(issue, applied, step)
        return _after_reboot(issue, applied, step)
    if applied.plan.snapshot is not None:
        stages.drop_fallback(ctx, applied.plan.snapshot)
    if applied.status in ("rolled_back", "rollback_failed"):
        ctx.notify.rolled_back(issue, applied)
    return _after_apply(issue, applied)


def _destroy(ctx: RunContext, sandbox: Sandbox) -> None:
    """The sandbox goes as soon as the fix is on the target: the reboot and its verification need the
    CPU more than a sandbox nobody will use again."""
    try:
        sandbox.destroy()
    except VmRepairError as exc:
        log.exception("cannot destroy the troubleshooting VM")
        ctx.session.event(Stage.CLEANUP, "error", message=exc.message)


def _after_apply(issue: Issue, applied: Applied) -> IssueOutcome:
    txn, strategy = applied.txn, applied.txn.strategy
    if applied.status == "applied":
        return IssueOutcome(issue, SessionStatus.REPAIRED, f"{strategy} applied and verified on the target",
                            strategy=strategy, backup=txn.backup_dir, package=txn.package_dir, txn=txn.id)
    if applied.status == "rolled_back":
        return IssueOutcome(issue, SessionStatus.NOT_REPAIRED, f"apply rolled_back: target restored from "
                            f"{txn.backup_dir}", strategy=strategy, backup=txn.backup_dir, txn=txn.id,
                            restored=True)
    return IssueOutcome(issue, SessionStatus.NOT_REPAIRED, f"apply {applied.status}; see {txn.backup_dir}",
                        strategy=strategy, backup=txn.backup_dir, txn=txn.id, support_ref=txn.support_ref)


def _after_reboot(issue: Issue, applied: Applied, step: RebootStep) -> IssueOutcome:
    txn = applied.txn
    base = IssueOutcome(issue, SessionStatus.PENDING_REBOOT, "", strategy=txn.strategy, txn=txn.id,
                        support_ref=txn.support_ref, backup=txn.backup_dir, policy=step.policy)
    match step.end:
        case RebootEnd.PENDING:
            return replace(base, note=step.note, summary=f"{txn.strategy} applied and verified as far as "
                           f"possible without a boot; reboot pending ({step.policy}): {step.how}")
        case RebootEnd.JOINED:
            return replace(base, summary=f"{txn.strategy} applied; it joins the reboot already scheduled "
                           f"({step.how})")
        case RebootEnd.NOT_DUE:
            return replace(base, summary="reboot scheduled but not yet due")
    outcome = step.outcome
    if step.end is RebootEnd.VERIFIED:
        return replace(base, status=SessionStatus.REPAIRED, policy=None, reboot=outcome,
                       summary=f"{txn.strategy} applied, target rebooted and verified after the boot")
    status, message = (outcome.status, outcome.message) if outcome is not None else ("unknown", "")
    return replace(base, status=SessionStatus.NOT_REPAIRED if step.is_restored else SessionStatus.ERROR,
                   policy=None, reboot=outcome, restored=step.is_restored,
                   summary=f"{txn.strategy} failed after the reboot ({status}): {message}")
