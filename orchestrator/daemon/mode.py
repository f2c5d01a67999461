"""Full, reduced or degraded: what the host runs with, for `vmrepair status` and ``/ready``.

- **full**: every watched component works.
- **reduced**: an OPTIONAL component does not work, or a vital one runs as a vmrepair stub (its
  dependants run, it does not). The host does its job with fewer features; nothing is changed on an
  optional component's behalf (boot diagnostics only report it).
- **degraded**: a VITAL component does not work and no stub stands in for it.

Start: the boot diagnosis (every component, vital or not). Then every detection: a component with
no issue any more has recovered and leaves the list; an optional component that gains issues joins
it with the first issue's summary. Vital components that break later are the repair pipeline's
(the detection job escalates them): they are issues, not a mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FULL, REDUCED, DEGRADED = "full", "reduced", "degraded"
#: The boot diagnosis' state of a vital component a stub stands in for.
STUBBED = "reduced"


@dataclass(frozen=True)
class NotWorking:
    component: str
    vital: bool
    #: The boot diagnosis' state (broken, missing, reduced) or "issues" (found by a later detection).
    state: str
    why: str

    @property
    def mode(self) -> str:
        return DEGRADED if self.vital and self.state != STUBBED else REDUCED

    def as_dict(self) -> dict[str, object]:
        return {"component": self.component, "vital": self.vital, "state": self.state, "why": self.why}


class ModeTracker:
    """Not thread-safe: :class:`~orchestrator.daemon.state.DaemonState` calls it under its lock."""

    def __init__(self) -> None:
        self._optional: frozenset[str] = frozenset()
        self._not_working: dict[str, NotWorking] = {}

    def boot(self, optional: Iterable[str], not_working: Iterable[NotWorking]) -> None:
        self._optional = frozenset(optional)
        self._not_working = {n.component: n for n in not_working}

    def detected(self, issues: Iterable[tuple[str, str]]) -> None:
        """``issues``: (component, summary) of every issue the detection found."""
        first: dict[str, str] = {}
        for component, summary in issues:
            first.setdefault(component, summary)
        self._not_working = {c: n for c, n in self._not_working.items() if c in first}
        for component, summary in first.items():
            if component in self._optional and component not in self._not_working:
                self._not_working[component] = NotWorking(component, False, "issues", summary)

    def view(self) -> dict[str, object]:
        modes = {n.mode for n in self._not_working.values()}
        mode = DEGRADED if DEGRADED in modes else REDUCED if modes else FULL
        return {"mode": mode, "not_working": [n.as_dict() for n in sorted(
            self._not_working.values(), key=lambda n: (not n.vital, n.component))]}
