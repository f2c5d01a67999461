"""Run one strategy's steps in the troubleshooting VM, in order, stopping at the first failure.

The attempt loop around this (snapshot, validation, revert) belongs to the pipeline: a failed step
leaves the VM half-changed on purpose, because the VM is reverted anyway.
"""

from __future__ import annotations

import logging

from orchestrator.errors import RepairStepError, StepNotApplicableError, VmRepairError
from orchestrator.playbooks.model import Strategy
from orchestrator.repair.log import AttemptLog, StepResult, StepStatus
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.registry import Step, describe, kind_of, run_step, templates

log = logging.getLogger(__name__)


def check_applicable(strategy: Strategy, ctx: RepairContext) -> str | None:
    """Why ``strategy`` cannot run here (before it changes anything), or None.

    Catches what is known up front: a baseline step without a baseline, a placeholder without a value
    (no offending file was extracted, the component has no unit). Steps can still find out later that
    they do not apply (no cached .deb, nothing to restore).
    """
    values = ctx.values()
    for index, step in enumerate(strategy.steps, start=1):
        if kind_of(step).needs_baseline and ctx.baseline is None:
            return f"step {index} ({step.kind}) needs the target's baseline, and it has none"
        for template in templates(step):
            missing = sorted(template.names - values.keys())
            if missing:
                return (f"step {index} ({step.kind}) needs {{{missing[0]}}}, which has no valid value "
                        f"here")
    return None


def execute_strategy(
    strategy: Strategy, ctx: RepairContext, *, attempt_log: AttemptLog | None = None
) -> AttemptLog:
    """Run every step of ``strategy``; return the attempt's log (steps, replayable operations).

    Pass ``attempt_log`` to keep the steps that ran before an error (the error itself carries only a message).

    Raises:
        StepNotApplicableError: the strategy does not apply here (checked before any step, or found by a
            step): skip it, it did not fail.
        RepairStepError: a step failed or was refused (including agent/transport errors and an
            unreadable baseline during it).
        StateError: the session's evidence file cannot be written.
    """
    attempt = attempt_log if attempt_log is not None else AttemptLog(strategy.name, strategy.playbook)
    began = ctx.clock()
    reason = check_applicable(strategy, ctx)
    if reason is not None:
        attempt.status, attempt.error = "skipped", reason
        _event(ctx, "skipped", strategy=strategy.name, reason=reason)
        raise StepNotApplicableError(f"{strategy.name}: {reason}", strategy=strategy.name)
    _event(ctx, "started", strategy=strategy.name, playbook=strategy.playbook)
    try:
        for index, step in enumerate(strategy.steps, start=1):
            _run_one(index, step, strategy, ctx, attempt)
    except StepNotApplicableError as exc:
        attempt.status, attempt.error = "skipped", exc.message
        raise
    except RepairStepError as exc:
        attempt.status, attempt.error = "failed", exc.message
        raise
    finally:
        attempt.duration_s = ctx.clock() - began
        if attempt.status != "running":
            _event(ctx, attempt.status, strategy=strategy.name, error=attempt.error)
    attempt.status = "ok"
    _event(ctx, "finished", strategy=strategy.name, replay_ops=attempt.replay_ops,
           duration_s=round(attempt.duration_s, 3))
    return attempt


def _run_one(index: int, step: Step, strategy: Strategy, ctx: RepairContext, attempt: AttemptLog) -> None:
    label = f"step {index} ({step.kind})"
    io = StepIO(ctx, strategy.name, label)
    started = ctx.clock()
    status: StepStatus = "failed"
    detail = ""
    try:
        detail = run_step(step, ctx, io)
        status = "ok"
    except StepNotApplicableError as exc:
        status, detail = "not_applicable", exc.message
        if exc.step:
            raise
        # Raised below the step (a placeholder without a value): add which strategy and step.
        raise StepNotApplicableError(f"{strategy.name}: {label}: {exc.message}", strategy=strategy.name,
                                     step=label) from exc
    except RepairStepError as exc:
        detail = exc.message
        raise
    except VmRepairError as exc:
        # An agent/transport error (or an unreadable baseline) in the middle of a step fails the
        # attempt; the VM is reverted.
        detail = f"{label}: {exc.message}"
        raise RepairStepError(f"{strategy.name}: {detail}", strategy=strategy.name, step=label) from exc
    finally:
        notes = "; ".join(io.notes)
        result = StepResult(index, step.kind, describe(step), status, ctx.clock() - started,
                            list(io.commands), "; ".join(x for x in (detail, notes) if x))
        attempt.steps.append(result)
        _event(ctx, "step", strategy=strategy.name, **result.as_dict())
    # Only a step that succeeded contributes operations to replay.
    for op in io.replay:
        attempt.add_replay(op)
    attempt.unreplayable.extend(io.unreplayable)
    log.debug("%s %s: %s", strategy.name, label, detail)


def _event(ctx: RepairContext, event: str, **data: object) -> None:
    if ctx.session is not None:
        ctx.session.event("repair", event, **data)
