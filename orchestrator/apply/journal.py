"""The apply journal: each step of one application, made durable in the state store before the act.

Thin adapter from the runner's vocabulary (begin, backed up, op i started/done, verified, committed,
rolling back) to :class:`orchestrator.state.transactions.TransactionStore`. A journal write that fails
before the first change aborts the apply (the target is untouched); one that fails later is reported
loudly but never stops a restore, because the target matters more than the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.agent.api import AgentApi
from orchestrator.apply.restore import rollback_from_backup
from orchestrator.fixpkg.ops import DaemonReloadOp, Operation, UnitOp, UnitStateOp
from orchestrator.state.transactions import OPERATOR_ROLLBACK, TransactionStore, TxnRecord
from orchestrator.transport.base import Transport


class Journal:
    """Raises (every method): StateError when the step cannot be recorded."""

    def __init__(self, store: TransactionStore, txn: TxnRecord, operations: tuple[Operation, ...]) -> None:
        self.store = store
        self.txn_id = txn.id
        self.operations = operations
        self.done = txn.ops_done
        self.units_touched = txn.units_touched

    def backed_up(self, files: int, package_sha256: str | None = None) -> None:
        """The verified backup is on disk (and the target accepted the package digest); the next step
        changes the target. The digest stays in the journal: which package exactly was applied."""
        detail: dict[str, Any] = {} if package_sha256 is None else {"package_sha256": package_sha256}
        self.store.step(self.txn_id, "backup_verified", state="backed_up", files=files, **detail)

    def start(self, index: int) -> None:
        op = self.operations[index]
        if isinstance(op, DaemonReloadOp | UnitOp | UnitStateOp):
            self.units_touched = True
        self.store.step(self.txn_id, "op_started", state="applying", index=index, op=op.name,
                        subject=getattr(op, "path", getattr(op, "unit", "")),
                        units_touched=self.units_touched)

    def finish(self, index: int) -> None:
        self.done = index + 1
        self.store.step(self.txn_id, "op_done", ops_done=self.done, index=index)

    def set_state(self, state: str, **detail: Any) -> None:
        error = detail.pop("cause", None) or detail.get("error")
        errors = detail.get("errors")
        if errors and not error:
            error = "; ".join(str(e) for e in errors)
        self.store.step(self.txn_id, state, state=state,
                        error=None if error is None else str(error)[:4000], **detail)


@dataclass(frozen=True)
class RollbackSteps:
    """Journal step names of one kind of rollback (who asked for it shows in ``vmrepair fixes show``)."""

    begin: str
    done: str
    failed: str


AFTER_BOOT = RollbackSteps("rolling_back", "rolled_back", "rollback_failed")
IN_RECOVERY = RollbackSteps("recovery_rolling_back", "recovered_rolled_back", "recovery_rollback_failed")
BY_OPERATOR = RollbackSteps(OPERATOR_ROLLBACK, "operator_rolled_back", "operator_rollback_failed")


def roll_back_transaction(
    store: TransactionStore, txn: TxnRecord, agent: AgentApi, transport: Transport, *,
    steps: RollbackSteps, cause: str,
) -> list[str]:
    """Restore ``txn``'s verified backup on its target, journalling before and after; return the errors
    (empty: ``rolled_back``, else ``rollback_failed`` with every error recorded).

    Raises:
        StateError: a step cannot be journalled.
    """
    store.step(txn.id, steps.begin, state="rolling_back", error=cause[:4000])
    errors = rollback_from_backup(Path(txn.backup_dir), agent, transport, units_touched=txn.units_touched)
    if errors:
        store.step(txn.id, steps.failed, state="rollback_failed", errors=errors,
                   error="; ".join(errors)[:4000])
    else:
        store.step(txn.id, steps.done, state="rolled_back", error=cause[:4000])
    return errors
