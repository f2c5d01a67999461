"""OutcomeStore in the state store: per-strategy (wins, tries), VM validations, target verifications and
verifications after a reboot, per fault signature level and per stage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestrator.fleet.signature import FaultSignature
from orchestrator.state import open_state
from orchestrator.state.outcomes import GLOBAL, STAGE_REBOOT, STAGE_TARGET, STAGE_VM, OutcomeStore
from orchestrator.state.schema import MIGRATIONS


def test_no_rows_means_no_history(tmp_path: Path) -> None:
    assert OutcomeStore(open_state(tmp_path / "s.db")).load() == {}


def test_record_counts_wins_and_tries_per_strategy(tmp_path: Path) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    store.record("nginx-restore-baseline", succeeded=True)
    store.record("nginx-restore-baseline", succeeded=False, stage="target", target="vm:p", txn_id="tx-1")
    store.record("jsonl-quarantine", succeeded=False)
    assert store.load() == {"nginx-restore-baseline": (1, 2), "jsonl-quarantine": (0, 1)}
    # Another connection (another process) sees the same committed history.
    assert OutcomeStore(open_state(tmp_path / "s.db")).load() == store.load()


FAULT = FaultSignature("nginx", "config_invalid", "config_invalid", "unknown directive <x>", "debian-12")
#: The same component, issue and cause on another release: same medium level, another fine one.
SAME_MEDIUM = FaultSignature("nginx", "config_invalid", "config_invalid", "unknown directive <x>",
                             "debian-13")
#: Another component with the same issue kind and cause: same coarse level only.
SAME_COARSE = FaultSignature("apache2", "config_invalid", "config_invalid", "syntax error", "debian-12")
OTHER = FaultSignature("nginx", "unit_failed", "dropin_present", "", "debian-12")


def test_load_for_tallies_each_signature_level_and_every_outcome_by_name(tmp_path: Path) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    store.record("fix", succeeded=True, signature=FAULT)
    store.record("fix", succeeded=False, stage=STAGE_TARGET, signature=FAULT)
    store.record("fix", succeeded=True, signature=SAME_MEDIUM)
    store.record("fix", succeeded=False, signature=SAME_COARSE)
    store.record("fix", succeeded=True, signature=OTHER)
    store.record("fix", succeeded=False)   # before signatures existed
    store.record("only-elsewhere", succeeded=True, signature=OTHER)
    history = store.load_for(FAULT)
    fix = history["fix"]
    assert (fix.level("fine"), fix.level("medium"), fix.level("coarse"), fix.level(GLOBAL)) == \
        ((1, 2), (2, 3), (2, 4), (3, 6))
    # Stages count the fine level only: the concordance of exactly this fault.
    assert (fix.stage(STAGE_VM), fix.stage(STAGE_TARGET), fix.stage(STAGE_REBOOT)) == ((1, 1), (0, 1), (0, 0))
    assert history["only-elsewhere"].levels == {GLOBAL: (1, 1)}
    assert {name: r.levels for name, r in store.load_for(None).items()} == \
        {"fix": {GLOBAL: (3, 6)}, "only-elsewhere": {GLOBAL: (1, 1)}}


def test_the_reboot_stage_finds_the_signature_of_its_transaction(tmp_path: Path) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    store.record("fix", succeeded=True, stage=STAGE_TARGET, target="vm:p", txn_id="tx-1", signature=FAULT)
    store.record("fix", succeeded=True, stage=STAGE_TARGET, target="vm:p", txn_id="tx-2")
    assert store.signature_of_txn("tx-1") == FAULT
    assert store.signature_of_txn("tx-2") is None
    assert store.signature_of_txn("tx-none") is None
    with store.db.write() as tx:   # a row edited by hand is no signature, not an error
        tx.execute("UPDATE outcomes SET signature_parts = '[1' WHERE txn_id = 'tx-1'")
    assert store.signature_of_txn("tx-1") is None


def test_stage_tallies_group_by_signature_strategy_and_stage(tmp_path: Path) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    store.record("fix", succeeded=True, signature=FAULT)
    store.record("fix", succeeded=True, stage=STAGE_REBOOT, signature=FAULT)
    store.record("fix", succeeded=False, stage=STAGE_REBOOT, signature=FAULT)
    store.record("fix", succeeded=True)
    rows = {(t.signature, t.strategy, t.stage): (t.successes, t.tries) for t in store.stage_tallies()}
    assert rows == {(FAULT.fine, "fix", STAGE_VM): (1, 1), (FAULT.fine, "fix", STAGE_REBOOT): (1, 2),
                    ("", "fix", STAGE_VM): (1, 1)}
    signed = next(t for t in store.stage_tallies() if t.signature)
    assert signed.parts["component_kind"] == "nginx" and signed.parts["os_release"] == "debian-12"


def test_a_store_from_before_signatures_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    for statement in ";".join(MIGRATIONS[:3]).split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO outcomes (strategy, succeeded, stage, at) VALUES ('fix', 1, 'target', 'now')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = OutcomeStore(open_state(path))
    assert store.load_for(FAULT)["fix"].levels == {GLOBAL: (1, 1)}
    assert [(t.signature, t.parts) for t in store.stage_tallies()] == [("", {})]
