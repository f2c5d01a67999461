"""The daemon's retention job: prune the state directory every ``retention.interval_s``.

It takes the state lock without waiting, like every daemon action that changes state: when a repair
(the daemon's or an operator's `vmrepair run`) holds it, this round is skipped and the next one
prunes. Holding the lock is also what lets it remove a ``running`` session a crashed run left behind.
What to do is injected, so the job is tested without a state directory (wired in
:mod:`orchestrator.daemon.wiring`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from orchestrator.prune.run import PruneReport

log = logging.getLogger(__name__)


class PruneJob:
    """Runs ``prune()``; it returns None when the round was skipped (the lock was held)."""

    name = "prune"

    def __init__(self, *, interval_s: float, prune: Callable[[], PruneReport | None]) -> None:
        self.interval_s = interval_s
        self._prune = prune

    def run(self) -> None:
        """Raises: StateError: the state directory cannot be listed (the scheduler audits it)."""
        report = self._prune()
        if report is None:
            log.info("prune skipped: the state lock is held (a repair is running)")
            return
        if report.removed or report.errors:
            log.info("pruned %d item(s), %d failure(s)", len(report.removed), len(report.errors))
