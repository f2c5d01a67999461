"""Reboots that finish a fix: when they may happen, who hears of them, and the operator's say.

- :mod:`.window`    maintenance windows, rebootmgr style (``"Sun 03:30 for 1h30"``), in local wall time
- :mod:`.schedule`  :class:`~.schedule.RebootScheduler`: the ``reboots`` table, policies, operator actions
- :mod:`.notify`    notifiers (log, webhook, command) and the composite that never blocks a repair
- :mod:`.executor`  runs the reboots that are due and verifies the target afterwards

Nothing is imported here on purpose: :mod:`orchestrator.config.reboot` validates windows with
:mod:`.window`, and importing the scheduler from this package would make that import circular.
"""

from __future__ import annotations
