"""Transactions: created in ``intent``, each step one durable row, listed by state and target."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.state import open_state
from orchestrator.state.transactions import IN_FLIGHT, TransactionStore


def _store(tmp_path: Path) -> TransactionStore:
    return TransactionStore(open_state(tmp_path / "s.db"))


def test_create_then_steps_move_the_state_and_are_journalled(tmp_path: Path) -> None:
    store = _store(tmp_path)
    txn = store.create(package_id="pkg-1", package_dir="/p", target="vm:patient", component="nginx",
                       backup_dir="/b", ops_total=2, reboot_required=True, strategy="s")
    assert (txn.state, txn.ops_done, txn.reboot_required) == ("intent", 0, True)
    assert txn.support_ref.startswith("VMR-") and txn.id.startswith("tx-")
    store.step(txn.id, "backup_verified", state="backed_up", files=2)
    store.step(txn.id, "op_started", state="applying", index=0, units_touched=True)
    store.step(txn.id, "op_done", ops_done=1, index=0)
    again = _store(tmp_path).get(txn.id)   # another connection sees committed rows
    assert (again.state, again.ops_done, again.units_touched) == ("applying", 1, True)
    assert [s["step"] for s in store.steps(txn.id)] == ["intent", "backup_verified", "op_started", "op_done"]
    assert store.steps(txn.id)[1]["detail"] == {"files": 2}
    assert [t.id for t in store.find(states=IN_FLIGHT)] == [txn.id]
    assert store.find(target="vm:other") == []


def test_unknown_state_and_transaction_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    txn = store.create(package_id="p", package_dir="/p", target="local", component="c", backup_dir="/b",
                       ops_total=0)
    with pytest.raises(StateError, match="unknown transaction state 'half-done'"):
        store.step(txn.id, "x", state="half-done")
    with pytest.raises(StateError, match="no fix transaction 'tx-nope'") as info:
        store.get("tx-nope")
    assert info.value.remedy == "see `vmrepair fixes list`"
    with pytest.raises(StateError, match="no transaction tx-nope"):
        store.step("tx-nope", "x")
