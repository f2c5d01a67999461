"""``wait_active``: wait until a unit has been active for a while, proving a (re)start held::

    - wait_active: {unit: '{unit}', timeout_s: 60, settle_s: 3}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from orchestrator import systemd
from orchestrator.playbooks.fields import Strict, Token
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_unit

POLL_INTERVAL_S = 1.0


class WaitActiveSpec(Strict):
    unit: Token = "{unit}"
    timeout_s: float = Field(default=60.0, gt=0, le=900)
    settle_s: float = Field(default=3.0, ge=0, le=300, description="must stay active this long")


@dataclass(frozen=True)
class WaitActiveStep(Step):
    unit: Template
    timeout_s: float
    settle_s: float
    kind: ClassVar[str] = "wait_active"


def _convert(spec: WaitActiveSpec) -> WaitActiveStep:
    return WaitActiveStep(parse_template(spec.unit), spec.timeout_s, spec.settle_s)


def run_wait_active(step: WaitActiveStep, ctx: RepairContext, io: StepIO) -> str:
    """Poll ``systemctl is-active`` until the unit has been active for ``settle_s`` in a row.

    A unit that dies right after starting (a service that refuses its data) shows ``active`` for a
    moment, so one ``active`` answer is not enough: that would be a false "repaired". Unless a
    stability period of at least ``settle_s`` watches this unit next (``ctx.settle_watched_s``, one of
    the component's units): then the first ``active`` ends the step and that period proves it held.

    Raises:
        RepairStepError: the unit is ``failed``, or not steadily active within ``timeout_s``.
    """
    unit = render_unit(step.unit, ctx, io)
    deadline = ctx.clock() + step.timeout_s
    # In a troubleshooting VM the stability period that follows watches the component's units for
    # longer, under load: the settle would be the same check, shorter, done twice.
    handed = 0 < step.settle_s <= ctx.settle_watched_s and unit in ctx.component.units
    settle = 0.0 if handed else step.settle_s
    active_since: float | None = None
    polls = 0
    while True:
        began = ctx.clock()
        result = io.run(systemd.is_active_argv(unit), check=False, record=False)
        polls += 1
        state = result.stdout_text.strip() or f"exit {result.exit_status}"
        now = ctx.clock()
        if state == "active":
            active_since = now if active_since is None else active_since
            if now - active_since >= settle:
                io.record_result(result, now - began)
                if handed:
                    return (f"{unit} active ({polls} polls); its {step.settle_s:g} s settle is left to "
                            f"the {ctx.settle_watched_s:g} s stability period that follows")
                return f"{unit} active for {now - active_since:.1f} s ({polls} polls)"
        else:
            active_since = None
        if state == "failed" or now >= deadline:
            io.record_result(result, now - began)
            io.run(["journalctl", "-u", unit, "-n", "30", "--no-pager"], check=False)
            why = "failed" if state == "failed" else f"not steadily active after {step.timeout_s:g} s"
            raise io.fail(f"{unit} {why} (last state: {state})")
        ctx.sleep(POLL_INTERVAL_S)


KIND = register(StepKind(
    name="wait_active", order=90, spec=WaitActiveSpec, step=WaitActiveStep, convert=_convert,
    run=run_wait_active,
    describe=lambda step: f"wait until {step.unit.raw} is active",
    templates=lambda step: (step.unit,),
    template_fields=("unit",),
))
