"""When the daemon quarantines a component that keeps failing, whatever kind of checks it has.

Three triggers, each enough on its own (``health:`` in config.yaml sets every number):

- ``quarantine_after_escalations`` escalations of the health monitor and still failing (components
  with HTTP checks: restarts did not help, repairs did not hold);
- a restart loop of one of its units (:mod:`orchestrator.health.unitloops`: ``NRestarts`` climbing
  by ``quarantine_after_unit_restarts`` within the window, or systemd's start limit hit);
- ``quarantine_after_failed_repairs`` repair runs that ended ``not_repaired`` for the component within
  ``failed_repairs_window_s`` (:class:`FailedRepairs`).

**A vital component is never quarantined**: stopping and disabling it takes down what the host is
for, which is worse than a component that keeps failing. :func:`quarantine_reasons` leaves the choice
to :class:`~orchestrator.daemon.jobs.HealthJob`, which spares vital ones (audited once), and the
daemon's quarantine callback refuses them again, so no other caller can slip one through.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from orchestrator.model import SessionStatus

#: A repair that ran and could not fix the component. ``error`` (vmrepair or the hypervisor failed,
#: not the component) and ``not_reproduced`` (the VM could not show the fault) say nothing about the
#: component, so they never count towards a quarantine.
FAILED_REPAIR = str(SessionStatus.NOT_REPAIRED)
#: A repair that fixed it: the count of that component starts over.
_FIXED = frozenset({str(SessionStatus.REPAIRED), str(SessionStatus.PENDING_REBOOT),
                    str(SessionStatus.HEALTHY)})


class FailedRepairs:
    """Failed repair runs per component within a window.

    In memory, like the health monitor's counts: a daemon restart starts afresh, which errs towards
    quarantining later, never sooner. Not thread-safe; the daemon's jobs run one at a time.
    """

    def __init__(self, *, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def record(self, component: str, status: str) -> None:
        """Note how one repair run ended for ``component``."""
        if status in _FIXED:
            self._failures.pop(component, None)
        elif status == FAILED_REPAIR:
            self._failures.setdefault(component, deque()).append(self._clock())

    def over_limit(self) -> dict[str, int]:
        """Component → failed runs within the window, for those at or past the limit."""
        now, over = self._clock(), {}
        for component, times in self._failures.items():
            while times and now - times[0] >= self._window_s:
                times.popleft()
            if len(times) >= self._limit:
                over[component] = len(times)
        return over


def quarantine_reasons(
    status: Mapping[str, Mapping[str, object]], failed_repairs: Mapping[str, int], *,
    after_escalations: int, failed_repairs_window_s: float,
) -> dict[str, str]:
    """Component → why it should be quarantined, from the monitor's ``status()`` and the failed repairs.

    Vital or not is not decided here (see the module docstring).
    """
    reasons: dict[str, str] = {}
    for component, state in status.items():
        escalations = state.get("escalations")
        loop = state.get("restart_loop")
        if isinstance(escalations, int) and escalations >= after_escalations:
            reasons[component] = f"{escalations} escalations and still failing; repairs did not hold"
        elif isinstance(loop, str) and loop:
            reasons[component] = f"restart loop: {loop}"
    for component, count in failed_repairs.items():
        reasons.setdefault(component, f"{count} failed repair runs within {failed_repairs_window_s:g} s")
    return reasons
