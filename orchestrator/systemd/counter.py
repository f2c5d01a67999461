"""A start vmrepair asks for is the start ``NRestarts`` counts from.

systemd counts a unit's automatic restarts in ``NRestarts`` and flushes the count at the next start
asked for on purpose (service.c, ``flush_n_restarts``). The unit probe relies on that: after a loop in
the journal, a running unit with ``NRestarts`` > 0 is flapping, one at 0 was started on purpose since.

One interleaving defeats the flush: a unit waiting out ``RestartSec=`` whose cause a repair has just
removed. ``reset-failed`` zeroes the count; the restart timer fires and queues systemd's own start job
(``NRestarts=1``); the ``restart`` asked for before that job ran is merged into it. The merged job
stops a unit that is not running (state ``auto-restart`` to ``dead``, which flushes nothing) and starts
it: the unit runs, counting one automatic restart, and the repair that fixed it fails its own check as
"flapping". Seen in CI: a missing state directory recreated in the troubleshooting VM, ``reset-failed``
and ``restart`` of sampleapp 0.2 s apart, and the resolved layer's probe said "flapping: ... NRestarts=1
since its last deliberate start". That path is read from service.c and the CI evidence; a restart
that lands while the start job already *runs* is not merged (it stops the starting unit, which flushes:
measured on the template's systemd 252), so the window is one turn of PID 1's event loop.

So after a start or restart that succeeded, a unit that is up and still counts automatic restarts gets a
``reset-failed``, which on a running unit only zeroes the count (service.c, ``service_reset_failed``)
and the start rate limit: the count starts at the start vmrepair asked for, as it would have without
the race (tests/integration/test_systemd_counter.py: same process, ``NRestarts=0``, the probe passes).
A unit that failed again meanwhile, waits to be restarted or is still activating is left alone: a
failure stays visible to whatever checks it next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from orchestrator.systemd.argv import show_argv, unit_argv
from orchestrator.systemd.show import parse_show_one
from orchestrator.transport.base import CommandResult

#: Verbs after which the unit runs a start vmrepair asked for.
STARTING_VERBS = frozenset({"start", "restart"})
PROPERTIES = ("ActiveState", "SubState", "NRestarts")
#: Up: a unit still activating may yet fail, and a count it gathers then must stay visible.
_UP = frozenset({"active", "reloading"})

#: Runs one argv in the guest; None when it could not answer (a timeout).
Run = Callable[[Sequence[str]], CommandResult | None]


def restart_count(properties: Mapping[str, str]) -> int:
    """``NRestarts`` as a number; 0 when it is missing or not a plain decimal."""
    value = properties.get("NRestarts", "")
    # isascii: str.isdigit() also accepts digits like "²" that int() rejects.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else 0


def counts_an_automatic_restart(properties: Mapping[str, str]) -> bool:
    """Whether a unit started on purpose a moment ago still counts automatic restarts while it runs."""
    return restart_count(properties) > 0 and properties.get("ActiveState") in _UP


def read_back_argv(unit: str) -> list[str]:
    """The ``systemctl show`` that follows a start or restart of ``unit``."""
    return show_argv(unit, properties=PROPERTIES)


def own_the_start(run: Run, unit: str) -> bool:
    """After a start or restart of ``unit`` that succeeded: make ``NRestarts`` count from it (module
    docstring). Returns whether the count had to be reset.

    Raises: whatever ``run`` raises (the caller's transport errors)."""
    shown = run(read_back_argv(unit))
    if shown is None or shown.exit_status != 0:
        return False
    if not counts_an_automatic_restart(parse_show_one(shown.stdout_text, PROPERTIES).properties):
        return False
    run(unit_argv("reset-failed", unit))
    return True
