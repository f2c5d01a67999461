"""Durable state of vmrepair: one SQLite store (WAL, ``synchronous=FULL``) and the process lock.

- :mod:`.db`            open/verify/migrate the store; every write is a short ``BEGIN IMMEDIATE`` transaction
- :mod:`.schema`        the tables, versioned with ``PRAGMA user_version``
- :mod:`.transactions`  apply transactions and their step journal (``vmrepair fixes``)
- :mod:`.outcomes`      per-strategy outcomes that steer ranking
- :mod:`.lock`          one mutating vmrepair process at a time; the loser is told who holds it
"""

from __future__ import annotations

from orchestrator.state.db import StateDb, open_state
from orchestrator.state.lock import StateLock

__all__ = ["StateDb", "StateLock", "open_state"]
