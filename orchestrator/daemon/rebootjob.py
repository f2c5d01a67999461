"""The daemon's reboot job: performs the reboots that fell due — a ``window`` policy's maintenance
window opened, or the time `vmrepair reboot schedule AT` (or an ``automatic`` notice) set came.

Without it such a reboot was recorded and announced but performed only when someone happened to run
`vmrepair run` or `vmrepair reboot now`. The job checks cheaply (one read of the reboot store) and,
only when something is due, performs it exactly as `reboot now` does: the imminent notice, the
reboot, the verification after the boot, the commit or the rollback. What it reaches the target and
the store with is injected, so it is tested without either (wired in :mod:`orchestrator.daemon.wiring`).

The daemon's ``policy`` governs *new* repairs; a reboot already scheduled finishes a fix that was
applied with someone's consent (a policy, a schedule), so it is performed under every policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.audit.sink import AuditSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueRebootsRun:
    """What one pass over the due reboots did."""

    #: Performed and verified (committed or rolled back to a good state), per transaction.
    verified: tuple[str, ...] = ()
    #: Did not verify (unreachable, rollback failed, ...), with the reason.
    failed: tuple[str, ...] = ()
    #: Not attempted: the state lock is held by a run (it is tried again next tick).
    deferred: str = ""


class RebootJob:
    """Every ``interval_s``: when a reboot is due, perform it (under the state lock)."""

    name = "reboots"

    def __init__(self, *, interval_s: float, due: Callable[[], int],
                 perform: Callable[[], DueRebootsRun], audit: AuditSink) -> None:
        self.interval_s = interval_s
        self._due = due
        self._perform = perform
        self._audit = audit

    def run(self) -> None:
        count = self._due()
        if not count:
            return
        log.info("%d reboot(s) due: performing", count)
        result = self._perform()
        if result.deferred:
            log.info("due reboot deferred: %s", result.deferred)
            self._audit.record("daemon_reboot_deferred", component="reboot", status="deferred",
                               details={"reason": result.deferred})
            return
        self._audit.record("daemon_reboots_performed", component="reboot",
                           status="failed" if result.failed else "verified",
                           details={"verified": list(result.verified), "failed": list(result.failed)})
        for reason in result.failed:
            log.warning("reboot did not verify: %s", reason)
