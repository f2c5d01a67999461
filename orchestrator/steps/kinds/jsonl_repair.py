"""``jsonl_repair``: repair the component's JSON-lines logs with the agent, keeping every good line::

    - jsonl_repair: {paths: component}
    - jsonl_repair: {paths: ['{subject}']}

Bad lines go to the agent's quarantine file, nothing is deleted. The target's file is repaired by a
replayed ``jsonl_repair`` operation, never copied from the VM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, field_validator

from orchestrator.fixpkg.ops import JsonlRepairOp
from orchestrator.playbooks.fields import COMPONENT_SCOPE, JsonlPath, Strict, listify
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import normalize
from orchestrator.steps.registry import Step, StepKind, register


class JsonlRepairSpec(Strict):
    paths: list[JsonlPath] = Field(
        default_factory=lambda: [COMPONENT_SCOPE], min_length=1,
        description="component (all of the component's jsonl_logs), or some of them ({subject})")

    _one_path = field_validator("paths", mode="before", json_schema_input_type=str | list[str])(listify)


@dataclass(frozen=True)
class JsonlRepairStep(Step):
    #: Every jsonl log of the component (``paths: component``), plus any named in ``paths``.
    all_logs: bool
    paths: tuple[Template, ...]
    kind: ClassVar[str] = "jsonl_repair"


def _convert(spec: JsonlRepairSpec) -> JsonlRepairStep:
    return JsonlRepairStep(COMPONENT_SCOPE in spec.paths,
                           tuple(parse_template(p) for p in spec.paths if p != COMPONENT_SCOPE))


def _describe(step: JsonlRepairStep) -> str:
    named = [t.raw for t in step.paths]
    return f"repair {', '.join((['the jsonl logs'] if step.all_logs else []) + named)}"


def run_jsonl_repair(step: JsonlRepairStep, ctx: RepairContext, io: StepIO) -> str:
    """Repair the component's JSONL logs (or those named, which must be among them) with the agent.

    Recorded as a replayable ``jsonl_repair`` operation: the target's file is repaired in place by the
    same agent code. Copying the VM's file would add the lines the VM's own service wrote while it was
    validated to the target's data.

    Raises:
        StepNotApplicableError: the component has no such log, or every log is already sound.
        RepairStepError: a named path is not one of the component's jsonl_logs (refused).
        TransportError: the agent failed (the attempt fails).
    """
    known = list(ctx.component.jsonl_logs)
    logs = list(known) if step.all_logs else []
    values = ctx.values()
    for template in step.paths:
        path = normalize(template.render(values))
        if path is None or path not in known:
            raise io.fail(f"refusing {template.raw!r}: not a jsonl log of {ctx.component.name}")
        if path not in logs:
            logs.append(path)
    if not logs:
        raise io.not_applicable(f"{ctx.component.name} has no jsonl logs")
    repaired = []
    for path in logs:
        report = ctx.agent.jsonl_check(path)
        if report.ok:
            io.note(f"{path}: sound ({report.good_lines} lines)" if report.exists else f"{path}: absent")
            continue
        result = ctx.agent.jsonl_repair(path)
        io.replay_op(JsonlRepairOp(path))
        io.note(f"{path}: kept {result.kept}, repaired {result.repaired}, quarantined {result.quarantined} "
                f"line(s) and {result.fragments} fragment(s) of repaired lines to {result.quarantine_path}; "
                f"backup {result.backup_path}")
        repaired.append(path)
    if not repaired:
        raise io.not_applicable(f"{', '.join(logs)}: no corrupt lines to repair")
    return f"repaired {', '.join(repaired)}"


KIND = register(StepKind(
    name="jsonl_repair", order=70, spec=JsonlRepairSpec, step=JsonlRepairStep, convert=_convert,
    run=run_jsonl_repair, describe=_describe,
    templates=lambda step: step.paths,
    template_fields=("paths",),
    replays=frozenset({JsonlRepairOp.name}),
))
