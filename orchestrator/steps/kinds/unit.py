"""``unit``: ``systemctl ACTION UNIT`` (or ``daemon-reload``), recorded for the fix package when it can
replay the action::

    - unit: {name: '{unit}', action: restart}
    - unit: {action: daemon-reload}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from orchestrator import systemd
from orchestrator.fixpkg.ops import RESTORABLE_UNIT_STATES, DaemonReloadOp, UnitOp, UnitStateOp
from orchestrator.playbooks.fields import Strict, Token
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_unit
from orchestrator.systemd.counter import STARTING_VERBS, own_the_start
from orchestrator.systemd.query import first_state_word

#: Unit actions a fix package replays (fixpkg.ops.UNIT_ACTIONS); its replay runs reset-failed first.
REPLAYED_ACTIONS = frozenset({"start", "stop", "restart", "reload"})
#: enable/disable/mask/unmask replay as a unit_state: the state `systemctl is-enabled` printed before
#: is its precondition on the target and what a rollback restores.
STATE_OF_ACTION = {"enable": "enabled", "disable": "disabled", "mask": "masked", "unmask": "unmasked"}


class UnitSpec(Strict):
    name: Token | None = Field(default=None, description="unit name or {unit}; omitted for daemon-reload")
    action: Literal["start", "stop", "restart", "reload", "daemon-reload", "reset-failed", "enable",
                    "disable", "mask", "unmask"]

    @model_validator(mode="after")
    def _name_matches_action(self) -> UnitSpec:
        if self.action == "daemon-reload" and self.name is not None:
            raise ValueError("daemon-reload takes no name")
        if self.action != "daemon-reload" and not self.name:
            raise ValueError(f"{self.action} needs a unit name")
        return self


@dataclass(frozen=True)
class UnitStep(Step):
    action: str
    name: Template | None
    kind: ClassVar[str] = "unit"


def _convert(spec: UnitSpec) -> UnitStep:
    return UnitStep(spec.action, None if spec.name is None else parse_template(spec.name))


def _describe(step: UnitStep) -> str:
    return step.action if step.name is None else f"{step.action} {step.name.raw}"


def run_unit(step: UnitStep, ctx: RepairContext, io: StepIO) -> str:
    """``systemctl ACTION UNIT`` (or ``daemon-reload``), recorded for replay when a package can replay it.

    Raises:
        RepairStepError: systemctl failed (except ``reset-failed``, see below).
    """
    if step.action == "daemon-reload":
        io.run(systemd.daemon_reload_argv())
        io.replay_op(DaemonReloadOp())
        return "reloaded systemd units"
    if step.name is None:  # the schema requires a name for every other action
        raise io.fail(f"{step.action} needs a unit name")
    unit = render_unit(step.name, ctx, io)
    before = None
    if step.action in STATE_OF_ACTION:
        before = first_state_word(io.run(systemd.is_enabled_argv(unit), check=False).stdout_text)
    result = io.run(systemd.unit_argv(step.action, unit), check=False)
    if result.exit_status != 0:
        if step.action == "reset-failed":
            # Exits non-zero when the unit is not loaded: nothing was failed, so nothing to reset.
            return f"reset-failed {unit}: nothing to reset (exit {result.exit_status})"
        # The journal says why a start failed; systemctl itself only says "see journalctl".
        io.run(["journalctl", "-u", unit, "-n", "30", "--no-pager"], check=False)
        raise io.fail(f"systemctl {step.action} {unit} exited {result.exit_status}")
    if step.action in STARTING_VERBS and own_the_start(lambda argv: io.run(argv, check=False), unit):
        io.note(f"{unit}: its restart count was reset after the {step.action}: systemd's own automatic "
                "restart had taken the start asked for (see orchestrator.systemd.counter)")
    if step.action in REPLAYED_ACTIONS:
        io.replay_op(UnitOp(unit, step.action))
    elif before in RESTORABLE_UNIT_STATES:
        io.replay_op(UnitStateOp(unit, STATE_OF_ACTION[step.action], before))
    elif before is not None:
        # linked, enabled-runtime, generated ...: no rollback could restore that state exactly.
        io.unreplayable.append(f"systemctl {step.action} {unit} (the unit was {before})")
    return f"{step.action} {unit}"


KIND = register(StepKind(
    name="unit", order=20, spec=UnitSpec, step=UnitStep, convert=_convert, run=run_unit,
    describe=_describe,
    templates=lambda step: () if step.name is None else (step.name,),
    template_fields=("name",),
    replays=frozenset({UnitOp.name, DaemonReloadOp.name, UnitStateOp.name}),
))
