"""The ``reboots`` table: one row per reboot a target owes its fixes, and the fixes it finishes.

A reboot's ``state`` moves along::

    waiting_operator --(approve / schedule)--> scheduled --> rebooting --> done | failed | unreachable
    waiting_operator | scheduled --> cancelled
    scheduled --> failed | unreachable                     (the executor could not even start it)

``waiting_operator`` and ``scheduled`` are *open*; a store-level unique index keeps at most one open
reboot per target, and a second request joins it (``reboot_txns``) instead of adding a reboot. A row
leaves ``rebooting`` only forward, so a clock that jumps back can never make a done reboot due again.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import RebootError
from orchestrator.state.db import StateDb
from orchestrator.timestamps import format_timestamp

OPEN = ("waiting_operator", "scheduled")
IN_PROGRESS = "rebooting"
FINAL = ("done", "failed", "unreachable", "cancelled")
STATES = (*OPEN, IN_PROGRESS, *FINAL)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "waiting_operator": ("scheduled", "cancelled"),
    "scheduled": ("scheduled", "rebooting", "cancelled", "failed", "unreachable"),
    "rebooting": ("done", "failed", "unreachable"),
}
_SELECT = ("SELECT r.*, COALESCE(t.support_ref, '') AS support_ref FROM reboots r"
           " LEFT JOIN transactions t ON t.id = r.txn_id")


@dataclass(frozen=True)
class RebootRecord:
    """One reboot. Times are ISO-8601 UTC; ``when`` is filled in by the scheduler for people."""

    id: int
    target: str
    txn_id: str | None
    txn_ids: tuple[str, ...]
    policy: str
    state: str
    reason: str
    requested_at: str
    not_before: str | None
    window: str
    updated_at: str
    error: str
    support_ref: str
    when: str = ""

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def not_before_at(self) -> dt.datetime | None:
        return None if self.not_before is None else dt.datetime.fromisoformat(self.not_before)

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["txn_ids"] = list(self.txn_ids)
        return data


def iso(moment: dt.datetime) -> str:
    return format_timestamp(moment)


class RebootStore:
    """Raises (every method): StateError / StateCorruptError from the store."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def join_or_create(self, *, target: str, txn_id: str | None, reason: str, policy: str, state: str,
                       not_before: dt.datetime | None, window: str,
                       now: dt.datetime) -> tuple[RebootRecord, bool]:
        """The target's open reboot with this fix joined to it, or a new one; True when joined."""
        with self.db.write() as tx:
            row = tx.execute("SELECT id, reason FROM reboots WHERE target = ? AND state IN (?, ?)",
                             (target, *OPEN)).fetchone()
            if row is not None:
                record_id = int(row["id"])
                if reason and reason not in str(row["reason"]).split("; "):
                    tx.execute("UPDATE reboots SET reason = ?, updated_at = ? WHERE id = ?",
                               ("; ".join(filter(None, (row["reason"], reason))), iso(now), record_id))
            else:
                record_id = int(tx.execute(
                    "INSERT INTO reboots (target, txn_id, policy, state, reason, requested_at, not_before,"
                    " window, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (target, txn_id, policy, state, reason, iso(now),
                     None if not_before is None else iso(not_before), window, iso(now))).lastrowid or 0)
            if txn_id:
                tx.execute("INSERT OR IGNORE INTO reboot_txns (reboot_id, txn_id, reason, at)"
                           " VALUES (?, ?, ?, ?)", (record_id, txn_id, reason, iso(now)))
        return self.get(record_id), row is not None

    def move(self, record: RebootRecord, state: str, *, now: dt.datetime, error: str | None = None,
             not_before: dt.datetime | None = None, window: str | None = None) -> RebootRecord:
        """Move ``record`` to ``state`` if it is still in the state it was read in.

        Raises:
            RebootError: the move is not allowed from its state, or another process moved it first.
        """
        if state not in TRANSITIONS.get(record.state, ()):
            raise RebootError(f"reboot #{record.id} of {record.target} is {record.state}; it cannot "
                              f"become {state}", remedy="see `vmrepair reboot status`")
        sets, params = ["state = ?", "updated_at = ?"], [state, iso(now)]
        for column, value in (("error", error), ("window", window),
                              ("not_before", None if not_before is None else iso(not_before))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        # S608 below: only fixed column names are interpolated, every value is bound.
        with self.db.write() as tx:
            # Compare-and-set on the state: the daemon and the CLI may act on the same row.
            changed = tx.execute(f"UPDATE reboots SET {', '.join(sets)} WHERE id = ? AND state = ?",  # noqa: S608
                                 (*params, record.id, record.state)).rowcount
        if changed != 1:
            raise RebootError(f"reboot #{record.id} of {record.target} changed meanwhile "
                              f"(now {self.get(record.id).state})", remedy="see `vmrepair reboot status`")
        return self.get(record.id)

    def get(self, record_id: int) -> RebootRecord:
        """Raises: RebootError when there is no such record."""
        found = self._select(" WHERE r.id = ?", (record_id,))
        if not found:
            raise RebootError(f"no reboot #{record_id}", remedy="see `vmrepair reboot status`")
        return found[0]

    def find(self, *, states: Iterable[str], target: str | None = None) -> list[RebootRecord]:
        wanted = list(states)
        where, params = f" WHERE r.state IN ({', '.join('?' * len(wanted))})", list(wanted)
        if target is not None:
            where += " AND r.target = ?"
            params.append(target)
        return self._select(where + " ORDER BY r.id", tuple(params))

    def latest_final(self, target: str | None = None) -> list[RebootRecord]:
        """The last finished reboot of each target (or of ``target``)."""
        marks = ", ".join("?" * len(FINAL))
        where, params = f"state IN ({marks})", list(FINAL)
        if target is not None:
            where, params = where + " AND target = ?", [*params, target]
        # S608: only placeholders and fixed column names are interpolated, every value is bound.
        return self._select(f" WHERE r.id IN (SELECT MAX(id) FROM reboots WHERE {where} GROUP BY target)"  # noqa: S608
                            " ORDER BY r.id", tuple(params))

    def _select(self, where: str, params: tuple[Any, ...]) -> list[RebootRecord]:
        rows = self.db.query(_SELECT + where, params)
        return [self._record(row) for row in rows]

    def _record(self, row: sqlite3.Row) -> RebootRecord:
        txns = self.db.query("SELECT txn_id FROM reboot_txns WHERE reboot_id = ? ORDER BY at, rowid",
                             (row["id"],))
        data = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row is not a mapping
        data["txn_ids"] = tuple(str(t["txn_id"]) for t in txns)
        return RebootRecord(**data)
