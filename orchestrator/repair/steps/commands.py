"""Steps that run commands: ``run``, ``unit`` (systemctl) and ``wait_active``."""

from __future__ import annotations

from orchestrator.playbooks.model import RunStep, UnitStep, WaitActiveStep
from orchestrator.playbooks.placeholders import UNIT_RE, Template
from orchestrator.repair.context import RepairContext
from orchestrator.repair.steps.io import StepIO

#: Unit actions a fix package replays (fixpkg.ops.UNIT_ACTIONS); its replay runs reset-failed first.
REPLAYED_ACTIONS = frozenset({"start", "stop", "restart", "reload"})
#: enable/disable change symlinks under /etc/systemd that a package neither backs up nor restores.
UNREPLAYABLE_ACTIONS = frozenset({"enable", "disable"})
POLL_INTERVAL_S = 1.0


def render_unit(template: Template, ctx: RepairContext, io: StepIO) -> str:
    """The unit a step names, checked.

    Raises:
        StepNotApplicableError: a placeholder has no value (a component without units).
        RepairStepError: the rendered value is not a unit name.
    """
    unit = template.render(ctx.values())
    if not UNIT_RE.match(unit) or unit.startswith("-"):
        raise io.fail(f"{unit!r} is not a unit name")
    return unit


def run_command(step: RunStep, ctx: RepairContext, io: StepIO) -> str:
    """Raises RepairStepError when the command exits outside ``ok_exit``."""
    values = ctx.values()
    argv = [token.render(values) for token in step.argv]
    result = io.run(argv, timeout=step.timeout_s, ok_exit=step.ok_exit)
    return f"exited {result.exit_status}"


def run_unit(step: UnitStep, ctx: RepairContext, io: StepIO) -> str:
    """``systemctl ACTION UNIT`` (or ``daemon-reload``), recorded for replay when a package can replay it.

    Raises:
        RepairStepError: systemctl failed (except ``reset-failed``, see below).
    """
    if step.action == "daemon-reload":
        io.run(["systemctl", "daemon-reload"])
        io.replay.append({"op": "daemon_reload"})
        return "reloaded systemd units"
    if step.name is None:  # the schema requires a name for every other action
        raise io.fail(f"{step.action} needs a unit name")
    unit = render_unit(step.name, ctx, io)
    result = io.run(["systemctl", step.action, unit], check=False)
    if result.exit_status != 0:
        if step.action == "reset-failed":
            # Exits non-zero when the unit is not loaded: nothing was failed, so nothing to reset.
            return f"reset-failed {unit}: nothing to reset (exit {result.exit_status})"
        # The journal says why a start failed; systemctl itself only says "see journalctl".
        io.run(["journalctl", "-u", unit, "-n", "30", "--no-pager"], check=False)
        raise io.fail(f"systemctl {step.action} {unit} exited {result.exit_status}")
    if step.action in REPLAYED_ACTIONS:
        io.replay.append({"op": "unit", "unit": unit, "action": step.action})
    elif step.action in UNREPLAYABLE_ACTIONS:
        io.unreplayable.append(f"systemctl {step.action} {unit}")
    return f"{step.action} {unit}"


def run_wait_active(step: WaitActiveStep, ctx: RepairContext, io: StepIO) -> str:
    """Poll ``systemctl is-active`` until the unit has been active for ``settle_s`` in a row.

    A unit that dies right after starting (a service that refuses its data) shows ``active`` for a
    moment, so one ``active`` answer is not enough: that would be a false "repaired".

    Raises:
        RepairStepError: the unit is ``failed``, or not steadily active within ``timeout_s``.
    """
    unit = render_unit(step.unit, ctx, io)
    deadline = ctx.clock() + step.timeout_s
    active_since: float | None = None
    polls = 0
    while True:
        began = ctx.clock()
        result = io.run(["systemctl", "is-active", unit], check=False, record=False)
        polls += 1
        state = result.stdout_text.strip() or f"exit {result.exit_status}"
        now = ctx.clock()
        if state == "active":
            active_since = now if active_since is None else active_since
            if now - active_since >= step.settle_s:
                io.record_result(result, now - began)
                return f"{unit} active for {now - active_since:.1f} s ({polls} polls)"
        else:
            active_since = None
        if state == "failed" or now >= deadline:
            io.record_result(result, now - began)
            io.run(["journalctl", "-u", unit, "-n", "30", "--no-pager"], check=False)
            why = "failed" if state == "failed" else f"not steadily active after {step.timeout_s:g} s"
            raise io.fail(f"{unit} {why} (last state: {state})")
        ctx.sleep(POLL_INTERVAL_S)
