"""A restart that cannot hang: queue it, watch the unit, and kill it through systemd at a deadline.

``systemctl restart`` waits for the restart job. A stop stuck in ``deactivating``/``stop-sigterm`` (a
process that ignores SIGTERM, or blocks in the kernel on a data directory it lost access to) makes it
wait for the unit's whole ``TimeoutStopSec`` and more, and the caller's command deadline then ends the
run with ``error``. Here the job is queued with ``--no-block`` and the unit's ``ActiveState`` polled
until it settles; a unit still on its way at ``deadline_s`` has its processes killed through systemd
(``systemctl kill --signal=SIGKILL``, then ``reset-failed``) and the outcome is a *hung* restart: a
value the caller counts as a failed restart, never an exception.

``InvocationID`` tells the new run from the old one: right after the job is queued the unit may still
be ``active`` with its old invocation, which is not a successful restart. systemd before 232 has no
InvocationID; then ``active`` seen after the first poll is taken as started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.systemd.argv import kill_argv, no_block_argv
from orchestrator.systemd.control import (
    QUICK_TIMEOUT_S,
    UnitCommand,
    quiet_runner,
    run_systemctl,
    unit_command,
)
from orchestrator.systemd.counter import own_the_start
from orchestrator.systemd.query import show
from orchestrator.transport.base import Transport

#: How long a restart may take before its unit is killed; ``health.restart_deadline_s`` overrides it.
RESTART_DEADLINE_S = 90.0
POLL_S = 2.0
PROPERTIES = ("ActiveState", "SubState", "InvocationID", "Result")


class RestartEnd(StrEnum):
    STARTED = "started"   # active, in a new invocation
    FAILED = "failed"     # the job was refused, or the unit ended failed/inactive
    HUNG = "hung"         # still activating/deactivating at the deadline: killed through systemd


@dataclass(frozen=True)
class RestartOutcome:
    """How one bounded restart of ``unit`` ended; ``commands`` are the systemctl calls that changed it."""

    unit: str
    end: RestartEnd
    active_state: str
    sub_state: str
    waited_s: float
    commands: tuple[UnitCommand, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.end is RestartEnd.STARTED

    @property
    def hung(self) -> bool:
        return self.end is RestartEnd.HUNG

    def describe(self) -> str:
        state = f"{self.active_state or '?'}/{self.sub_state or '?'}"
        if self.end is RestartEnd.HUNG:
            return (f"restart of {self.unit} hung ({state} after {self.waited_s:.0f} s); its processes "
                    "were killed through systemd")
        if self.end is RestartEnd.FAILED:
            refused = [c.describe() for c in self.commands if not c.succeeded]
            return f"restart of {self.unit} failed ({state})" + (f": {refused[0]}" if refused else "")
        return f"restarted {self.unit}"

    def as_dict(self) -> dict[str, object]:
        return {"unit": self.unit, "end": str(self.end), "active_state": self.active_state,
                "sub_state": self.sub_state, "waited_s": round(self.waited_s, 1),
                "commands": [c.as_dict() for c in self.commands]}


def bounded_restart(
    transport: Transport, unit: str, *,
    deadline_s: float = RESTART_DEADLINE_S, poll_s: float = POLL_S, quick_timeout: float = QUICK_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> RestartOutcome:
    """``reset-failed``, ``restart --no-block``, then poll the unit until it settles or ``deadline_s``.

    Never raises for the unit's behaviour (a refused job, a failed start, a hung stop are outcomes).

    Raises:
        TransportError: the target cannot be reached.
    """
    began = clock()
    before = _state(transport, unit, quick_timeout)
    unit_command(transport, "reset-failed", unit, timeout=quick_timeout)  # start rate limit, see control
    queued = run_systemctl(transport, no_block_argv("restart", unit), timeout=quick_timeout)
    commands: list[UnitCommand] = [queued]
    if not queued.succeeded and not queued.timed_out:
        return RestartOutcome(unit, RestartEnd.FAILED, before[0], before[1], clock() - began, tuple(commands))
    active, sub, inactive_polls, polls = before[0], before[1], 0, 0
    # Bounded by polls too: a clock that does not move (an injected one) must not make this endless.
    max_polls = int(deadline_s / max(poll_s, 0.01)) + 1
    while not queued.timed_out and clock() - began < deadline_s and polls < max_polls:
        sleep(poll_s)
        polls += 1
        active, sub, invocation = _state(transport, unit, quick_timeout)
        renewed = _renewed(before[2], invocation, polls)
        if active == "active" and renewed:
            own_the_start(quiet_runner(transport, quick_timeout), unit)
            return RestartOutcome(unit, RestartEnd.STARTED, active, sub, clock() - began, tuple(commands))
        # auto-restart: the new run already died and Restart= scheduled another; waiting for it would
        # sit out the deadline for a unit whose start simply fails (a broken config, say).
        if (active == "failed" or sub == "auto-restart") and renewed:
            return RestartOutcome(unit, RestartEnd.FAILED, active, sub, clock() - began, tuple(commands))
        # A restart job passes through inactive between its stop and its start: twice is not passing.
        inactive_polls = inactive_polls + 1 if active == "inactive" else 0
        if inactive_polls >= 2:
            return RestartOutcome(unit, RestartEnd.FAILED, active, sub, clock() - began, tuple(commands))
    # Still activating/deactivating (or the manager did not take the job in time): kill every process
    # of the unit, then clear the failed state the kill leaves so a later start is not rate-limited.
    commands.append(run_systemctl(transport, kill_argv(unit), timeout=quick_timeout))
    commands.append(unit_command(transport, "reset-failed", unit, timeout=quick_timeout))
    return RestartOutcome(unit, RestartEnd.HUNG, active, sub, clock() - began, tuple(commands))


def _renewed(before: str, now: str, polls: int) -> bool:
    """Whether the unit's state is that of the restarted run, not of the run before it."""
    if now:
        return now != before
    return polls > 1  # no InvocationID (systemd < 232): the second look is after the job ran


def _state(transport: Transport, unit: str, timeout: float) -> tuple[str, str, str]:
    """(ActiveState, SubState, InvocationID); empty strings when systemd did not answer."""
    answer = show(transport, [unit], PROPERTIES, timeout=timeout)
    if not answer.units:
        return "", "", ""
    info = answer.units[0]
    return info.active_state, info.sub_state, info.properties.get("InvocationID", "")
