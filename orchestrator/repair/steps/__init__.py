"""One module per family of step kinds; :func:`run_step` dispatches a step to its runner.

Every runner takes ``(step, ctx, io)``, acts on the VM through ``ctx`` and ``io``, returns a one-line
summary, and raises ``StepNotApplicableError`` (skip the strategy) or ``RepairStepError`` (fail the
attempt). Agent and transport errors are turned into ``RepairStepError`` by the caller.
"""

from __future__ import annotations

from orchestrator.playbooks import model as m
from orchestrator.playbooks.placeholders import Template
from orchestrator.repair.context import RepairContext
from orchestrator.repair.steps.baseline import run_restore_baseline
from orchestrator.repair.steps.commands import run_command, run_unit, run_wait_active
from orchestrator.repair.steps.conffile import run_restore_conffile
from orchestrator.repair.steps.data import run_jsonl_repair, run_reduce_logs
from orchestrator.repair.steps.fstab import run_fstab_entry
from orchestrator.repair.steps.io import StepIO
from orchestrator.repair.steps.quarantine import run_quarantine, run_quarantine_unknown_dropins


def run_step(step: m.Step, ctx: RepairContext, io: StepIO) -> str:  # noqa: PLR0911 - one per kind
    """Run one step; see the module docstring for what it raises."""
    match step:
        case m.RunStep():
            return run_command(step, ctx, io)
        case m.UnitStep():
            return run_unit(step, ctx, io)
        case m.RestoreBaselineStep():
            return run_restore_baseline(step, ctx, io)
        case m.RestoreConffileStep():
            return run_restore_conffile(step, ctx, io)
        case m.QuarantineStep():
            return run_quarantine(step, ctx, io)
        case m.QuarantineUnknownDropinsStep():
            return run_quarantine_unknown_dropins(step, ctx, io)
        case m.JsonlRepairStep():
            return run_jsonl_repair(step, ctx, io)
        case m.ReduceLogsStep():
            return run_reduce_logs(step, ctx, io)
        case m.WaitActiveStep():
            return run_wait_active(step, ctx, io)
        case m.FstabEntryStep():
            return run_fstab_entry(step, ctx, io)


def describe(step: m.Step) -> str:  # noqa: PLR0911 - one per kind
    """The step as the playbook writes it (placeholders unrendered), for logs and reports."""
    match step:
        case m.RunStep():
            return " ".join(t.raw for t in step.argv)
        case m.UnitStep():
            return step.action if step.name is None else f"{step.action} {step.name.raw}"
        case m.RestoreBaselineStep():
            return f"restore {', '.join([*step.scopes, *(t.raw for t in step.paths)])} from the baseline"
        case m.RestoreConffileStep():
            return f"restore {', '.join(t.raw for t in step.paths)} from {step.package}'s .deb"
        case m.QuarantineStep():
            return f"quarantine {step.path.raw}"
        case m.QuarantineUnknownDropinsStep():
            return f"quarantine unknown drop-ins of {step.unit.raw}"
        case m.JsonlRepairStep():
            named = [t.raw for t in step.paths]
            return f"repair {', '.join((['the jsonl logs'] if step.all_logs else []) + named)}"
        case m.ReduceLogsStep():
            return f"{step.method} logs of {step.min_bytes} bytes or more"
        case m.WaitActiveStep():
            return f"wait until {step.unit.raw} is active"
        case m.FstabEntryStep():
            how = "add nofail to" if step.action == "nofail" else "comment out"
            return f"{how} the entries of {step.path.raw} whose device is missing"


def templates(step: m.Step) -> tuple[Template, ...]:  # noqa: PLR0911 - one per kind
    """Every template a step renders (to check up front that all placeholders have values)."""
    match step:
        case m.RunStep():
            return step.argv
        case m.UnitStep():
            return () if step.name is None else (step.name,)
        case m.RestoreBaselineStep() | m.RestoreConffileStep() | m.JsonlRepairStep():
            return step.paths
        case m.QuarantineStep():
            return (step.path,)
        case m.QuarantineUnknownDropinsStep() | m.WaitActiveStep():
            return (step.unit,)
        case m.ReduceLogsStep():
            return ()
        case m.FstabEntryStep():
            return (step.path,)
