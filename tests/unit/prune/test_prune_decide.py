"""The retention rules: what is pruned by age, and every reason an old item is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.retention import RetentionSettings
from orchestrator.prune.decide import DAY_S, Decision, Item, Txn, decide

POLICY = RetentionSettings(sessions_days=30, backups_days=60, packages_days=10)
OLD = 400 * DAY_S
BACKUP = Path("/state/backups/S1/nginx-tx-000000000001")
PACKAGE = Path("/state/packages/pkg-1")


def _txn(state: str, *, age_s: float = OLD, session: str = "S1") -> Txn:
    return Txn("tx-000000000001", state, session, str(BACKUP), str(PACKAGE), age_s)


def _one(item: Item, txns: list[Txn] | None, *, lock_held: bool = True) -> Decision:
    (decision,) = decide([item], txns, POLICY, lock_held=lock_held)
    return decision


@pytest.mark.parametrize("state", ["committed", "rollback_failed", "pending_reboot", "applied", "applying",
                                   "intent", "backed_up", "rolling_back"])
def test_backup_of_a_transaction_that_can_still_be_rolled_back_is_kept_at_any_age(state: str) -> None:
    decision = _one(Item("backup", BACKUP, OLD), [_txn(state)])
    assert not decision.prune
    assert decision.reason == f"transaction tx-000000000001 is {state} and can still be rolled back"


@pytest.mark.parametrize("state", ["rolled_back", "aborted"])
def test_backup_of_a_spent_transaction_is_pruned_by_the_age_of_its_end(state: str) -> None:
    assert _one(Item("backup", BACKUP, OLD), [_txn(state)]).reason == (
        f"older than 60 days (transaction tx-000000000001 is {state})")
    # Written long ago, but the transaction ended yesterday: kept.
    recent = _one(Item("backup", BACKUP, OLD), [_txn(state, age_s=DAY_S)])
    assert (recent.prune, recent.reason) == (False, f"younger than 60 days (transaction tx-000000000001 "
                                                    f"is {state})")


def test_backup_nobody_refers_to_is_kept() -> None:
    decision = _one(Item("backup", BACKUP, OLD), [])
    assert not decision.prune
    assert decision.reason.startswith("no transaction refers to it (the state store may have been reset)")


def test_without_the_state_store_no_backup_or_package_is_pruned() -> None:
    for kind, path in (("backup", BACKUP), ("package", PACKAGE)):
        decision = _one(Item(kind, path, OLD), None)  # type: ignore[arg-type]
        assert (decision.prune, decision.reason) == (
            False, "the state store cannot be read: nothing tells whether it is still needed")


def test_sessions_by_status_lock_and_age() -> None:
    path = Path("/state/sessions/S1")
    assert _one(Item("session", path, OLD, "repaired"), []).reason == "older than 30 days (status repaired)"
    assert not _one(Item("session", path, 29 * DAY_S, "repaired"), []).prune
    running = Item("session", path, OLD, "running")
    assert _one(running, [], lock_held=False).reason == (
        "may belong to a run in progress (the state lock is not held)")
    assert _one(running, [], lock_held=True).prune       # we hold the lock: a crashed run's leftover
    assert _one(Item("session", path, OLD, "pending_reboot"), []).reason == (
        "its fix waits for a reboot and its verification")
    assert _one(Item("session", path, OLD, "error"), [_txn("applying")]).reason == (
        "transaction tx-000000000001 is applying")
    # A rollback needs the backup and the journal, not the session.
    assert _one(Item("session", path, OLD, "repaired"), [_txn("committed")]).prune
    assert not _one(Item("session", path, OLD, "unreadable"), None).prune
    assert _one(Item("session", path, OLD, "repaired"), None).prune


def test_packages_by_transaction_and_age() -> None:
    assert _one(Item("package", PACKAGE, OLD), []).reason == "older than 10 days (never applied)"
    assert _one(Item("package", PACKAGE, OLD), [_txn("pending_reboot")]).reason == (
        "transaction tx-000000000001 is pending_reboot")
    assert _one(Item("package", PACKAGE, OLD), [_txn("committed")]).prune
    assert not _one(Item("package", PACKAGE, OLD), [_txn("committed", age_s=DAY_S)]).prune
