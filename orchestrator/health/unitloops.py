"""Restart loops seen by the health monitor's unit-state polling, for every component with units.

The HTTP checks only cover components that have endpoints; a cache or a worker with none can crash
and be restarted by systemd (``Restart=on-failure``) all day without anyone noticing. Each poll asks
systemd once for the ``NRestarts`` and ``Result`` of every watched unit:

- ``NRestarts`` counts automatic restarts since the unit was last started on purpose. Only increases
  *seen* within ``window_s`` count: a value already high at the first look happened at some unknown
  time, and a drop means a deliberate start reset the counter (the loop, if any, starts over);
- ``Result=start-limit-hit`` with ``ActiveState=failed`` is systemd having given up on the unit.

A component with a looping unit is reported by :meth:`UnitLoopWatch.observe` once per loop and listed
by :meth:`UnitLoopWatch.looping` (what the daemon compares with its quarantine rules) until the unit
has been seen without new restarts for a whole window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.model import Component
from orchestrator.systemd import show
from orchestrator.transport.base import Transport

PROPERTIES = ("Id", "ActiveState", "SubState", "NRestarts", "Result")
#: ``show`` of every watched unit in one call; it only reads the manager's state.
SHOW_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class UnitLoop:
    component: str
    unit: str
    restarts: int
    start_limit_hit: bool

    def reason(self, window_s: float) -> str:
        if self.start_limit_hit:
            return (f"{self.unit} hit its start limit (systemd gave up restarting it) after {self.restarts} "
                    f"automatic restart(s) within {window_s:g} s")
        return f"{self.unit} restarted itself {self.restarts} times within {window_s:g} s (restart loop)"


@dataclass
class _UnitSamples:
    #: (clock, NRestarts) readings, oldest first.
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    loop: UnitLoop | None = None


class UnitLoopWatch:
    """Tracks ``NRestarts`` of the units of ``components``; not thread-safe (the monitor's poll owns it)."""

    def __init__(self, components: Sequence[Component], *, restarts_limit: int, window_s: float) -> None:
        self._units = {unit: c.name for c in components for unit in c.units}
        self._limit = restarts_limit
        self._window_s = window_s
        self._state = {unit: _UnitSamples() for unit in self._units}

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self._units)

    def observe(self, transport: Transport, now: float) -> list[UnitLoop]:
        """Ask systemd once; the loops that began with this look (each is reported once).

        A manager that does not answer changes nothing: the loop detection waits for the next poll.

        Raises:
            TransportError: the target cannot be reached.
        """
        if not self._units:
            return []
        answer = show(transport, list(self._units), PROPERTIES, timeout=SHOW_TIMEOUT_S)
        began: list[UnitLoop] = []
        for unit, info in zip(self._units, answer.units, strict=False):
            restarts = info.properties.get("NRestarts", "")
            if not restarts.isdigit():
                continue
            gave_up = info.active_state == "failed" and info.properties.get("Result") == "start-limit-hit"
            loop = self._sample(unit, now, int(restarts), gave_up)
            if loop is not None:
                began.append(loop)
        return began

    def looping(self) -> dict[str, str]:
        """Component → why it is in a restart loop, for components with a unit looping now."""
        loops: dict[str, str] = {}
        for unit, state in self._state.items():
            if state.loop is not None:
                loops.setdefault(self._units[unit], state.loop.reason(self._window_s))
        return loops

    def _sample(self, unit: str, now: float, restarts: int, gave_up: bool) -> UnitLoop | None:
        state = self._state[unit]
        if state.samples and restarts < state.samples[-1][1]:
            state.samples.clear()  # a deliberate start reset the counter
        state.samples.append((now, restarts))
        while len(state.samples) > 1 and now - state.samples[0][0] > self._window_s:
            state.samples.popleft()
        seen = restarts - state.samples[0][1]
        if seen >= self._limit or gave_up:
            if state.loop is None:
                state.loop = UnitLoop(self._units[unit], unit, seen, gave_up)
                return state.loop
            return None
        if len(state.samples) > 1 and state.samples[-1][1] == state.samples[0][1]:
            state.loop = None  # a whole window (the oldest sample kept) without a restart
        return None
