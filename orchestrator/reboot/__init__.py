"""Reboots that finish a fix: when they may happen, who hears of them, and the operator's say.

- :mod:`.schedule`  :class:`~.schedule.RebootScheduler`: the ``reboots`` table, policies, operator actions
- :mod:`.notify`    notifiers (log, webhook, command) and the composite that never blocks a repair
- :mod:`.executor`  runs the reboots that are due and verifies the target afterwards
- :mod:`.verify`    the verification plan of a fix and its check after the boot

The facts these build on (boot ids, rebooting a host, boot-critical paths, maintenance windows) are in
:mod:`orchestrator.boot`, below the hypervisor and the configuration that use them too.
"""

from __future__ import annotations
