"""Strategy outcomes that steer ranking: every validation in a VM and every verification on a target.

``load()`` gives, per strategy, (successes, tries); the ranker turns that into a Laplace-smoothed rate.
A verification failure on a real target after a reboot counts like a failed validation: the strategy
fixed the VM but not the host.
"""

from __future__ import annotations

from orchestrator.state.db import StateDb
from orchestrator.timestamps import now_timestamp


class OutcomeStore:
    """Raises (every method): StateError / StateCorruptError from the store."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def load(self) -> dict[str, tuple[int, int]]:
        rows = self.db.query("SELECT strategy, SUM(succeeded), COUNT(*) FROM outcomes GROUP BY strategy")
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def record(self, strategy: str, *, succeeded: bool, stage: str = "vm", target: str = "",
               txn_id: str | None = None) -> None:
        with self.db.write() as tx:
            tx.execute("INSERT INTO outcomes (strategy, succeeded, stage, target, txn_id, at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (strategy, int(succeeded), stage, target, txn_id,
                                                     now_timestamp()))
