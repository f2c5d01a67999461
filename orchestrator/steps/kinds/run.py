"""``run``: one command in the VM, as argv (never a shell string)::

    - run: {argv: [nginx, -t], timeout_s: 30, ok_exit: [0]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import Field

from orchestrator.playbooks.fields import Argv, Strict
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.registry import Step, StepKind, register


class RunSpec(Strict):
    argv: Argv
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    ok_exit: list[Annotated[int, Field(ge=0, le=255)]] = Field(default_factory=lambda: [0], min_length=1)


@dataclass(frozen=True)
class RunStep(Step):
    argv: tuple[Template, ...]
    timeout_s: float
    ok_exit: frozenset[int]
    kind: ClassVar[str] = "run"


def _convert(spec: RunSpec) -> RunStep:
    return RunStep(tuple(parse_template(t) for t in spec.argv), spec.timeout_s, frozenset(spec.ok_exit))


def run_command(step: RunStep, ctx: RepairContext, io: StepIO) -> str:
    """Raises RepairStepError when the command exits outside ``ok_exit``."""
    values = ctx.values()
    argv = [token.render(values) for token in step.argv]
    result = io.run(argv, timeout=step.timeout_s, ok_exit=step.ok_exit)
    return f"exited {result.exit_status}"


KIND = register(StepKind(
    name="run", order=10, spec=RunSpec, step=RunStep, convert=_convert, run=run_command,
    describe=lambda step: " ".join(t.raw for t in step.argv),
    templates=lambda step: step.argv,
    template_fields=("argv",),
))
