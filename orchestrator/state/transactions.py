"""Apply transactions and their step journal.

A transaction is one application of a fix package to one target. Its ``state`` only moves forward
along::

    intent -> backed_up -> applying -> applied -> committed                (no reboot needed)
                                          \\-> pending_reboot -> committed (verified after boot)
    any state after ``intent`` -> rolling_back -> rolled_back | rollback_failed
    intent | backed_up -> aborted                                          (target never touched)

Every change is one durable SQLite commit made *before* the act it announces (``op_started`` before the
operation runs), so after a crash :mod:`orchestrator.apply.recovery` knows what may have happened.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import StateError
from orchestrator.state.db import StateDb
from orchestrator.timestamps import now_timestamp

#: The target may hold a mix of old and new files: recovery must act.
IN_FLIGHT = ("intent", "backed_up", "applying", "applied", "rolling_back")
#: Applied, waiting for a reboot and verification after it.
PENDING_REBOOT = "pending_reboot"
#: Closed by the operator (`vmrepair fixes forget`): the target is gone for good, so the transaction
#: can be neither recovered nor rolled back; its backup stays where the record says.
FORGOTTEN = "forgotten"
FINAL = ("committed", "rolled_back", "rollback_failed", "aborted", FORGOTTEN)
STATES = (*IN_FLIGHT, PENDING_REBOOT, *FINAL)
#: Journal step of a rollback the operator asked for (``vmrepair fixes rollback``), not a failure.
OPERATOR_ROLLBACK = "operator_rollback"


@dataclass(frozen=True)
class TxnRecord:
    id: str
    package_id: str
    package_dir: str
    target: str
    session_id: str | None
    component: str
    issue_id: str
    strategy: str
    backup_dir: str
    state: str
    ops_total: int
    ops_done: int
    units_touched: bool
    reboot_required: bool
    attempt: int
    support_ref: str
    error: str
    created_at: str
    updated_at: str

    @property
    def is_in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


#: What :func:`new_txn_id` produces; checked before an id read from anywhere is used or shown as a command.
TXN_ID_RE = re.compile(r"^tx-[0-9a-f]{12}$")


def new_txn_id() -> str:
    return "tx-" + secrets.token_hex(6)


class TransactionStore:
    """Raises (every method): StateError / StateCorruptError from the store."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def create(
        self, *, package_id: str, package_dir: str, target: str, component: str, backup_dir: str,
        ops_total: int, session_id: str | None = None, issue_id: str = "", strategy: str = "",
        reboot_required: bool = False, attempt: int = 1, txn_id: str | None = None,
    ) -> TxnRecord:
        """Record the intent to apply ``package_id`` to ``target`` (state ``intent``)."""
        txn_id = txn_id or new_txn_id()
        now = now_timestamp()
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO transactions (id, package_id, package_dir, target, session_id, component,"
                " issue_id, strategy, backup_dir, state, ops_total, reboot_required, attempt,"
                " support_ref, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?, ?, ?, ?, ?)",
                (txn_id, package_id, package_dir, target, session_id, component, issue_id, strategy,
                 backup_dir, ops_total, int(reboot_required), attempt,
                 "VMR-" + secrets.token_hex(4).upper(), now, now))
            _insert_step(tx, txn_id, "intent", {"package": package_id, "backup_dir": backup_dir})
        return self.get(txn_id)

    def step(self, txn_id: str, step: str, *, state: str | None = None, ops_done: int | None = None,
             units_touched: bool | None = None, error: str | None = None, **detail: Any) -> None:
        """Journal one step (and move the transaction's state/progress) in one durable commit."""
        if state is not None and state not in STATES:
            raise StateError(f"unknown transaction state {state!r}")
        sets: list[str] = ["updated_at = ?"]
        params: list[str | int] = [now_timestamp()]
        for column, value in (("state", state), ("ops_done", ops_done),
                              ("units_touched", None if units_touched is None else int(units_touched)),
                              ("error", error)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        with self.db.write() as tx:
            # Column names come from the fixed tuple above, never from callers: not injectable.
            changed = tx.execute(f"UPDATE transactions SET {', '.join(sets)} WHERE id = ?",  # noqa: S608
                                 (*params, txn_id)).rowcount
            if changed != 1:
                raise StateError(f"no transaction {txn_id} in {self.db.path}")
            _insert_step(tx, txn_id, step, detail)

    def get(self, txn_id: str) -> TxnRecord:
        rows = self.db.query("SELECT * FROM transactions WHERE id = ?", (txn_id,))
        if not rows:
            raise StateError(f"no fix transaction {txn_id!r}", remedy="see `vmrepair fixes list`")
        return _record(rows[0])

    def find(self, *, states: Iterable[str] | None = None, target: str | None = None,
             limit: int = 200) -> list[TxnRecord]:
        sql, params = "SELECT * FROM transactions WHERE 1 = 1", list[str | int]()
        if states is not None:
            wanted = list(states)
            sql += f" AND state IN ({', '.join('?' * len(wanted))})"
            params += wanted
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return [_record(row) for row in self.db.query(sql, (*params, limit))]

    def steps(self, txn_id: str) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT seq, step, detail, at FROM txn_steps WHERE txn_id = ? ORDER BY seq",
                             (txn_id,))
        return [{"seq": r["seq"], "step": r["step"], "detail": json.loads(r["detail"]), "at": r["at"]}
                for r in rows]


def _insert_step(tx: Any, txn_id: str, step: str, detail: dict[str, Any]) -> None:
    seq = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM txn_steps WHERE txn_id = ?",
                     (txn_id,)).fetchone()[0]
    tx.execute("INSERT INTO txn_steps (txn_id, seq, step, detail, at) VALUES (?, ?, ?, ?, ?)",
               (txn_id, seq, step, json.dumps(detail, default=str), now_timestamp()))


def _record(row: Any) -> TxnRecord:
    data = dict(row)
    data["units_touched"] = bool(data["units_touched"])
    data["reboot_required"] = bool(data["reboot_required"])
    return TxnRecord(**data)
