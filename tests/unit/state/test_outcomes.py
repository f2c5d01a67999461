"""OutcomeStore in the state store: per-strategy (wins, tries), VM validations and target verifications."""

from __future__ import annotations

from pathlib import Path

from orchestrator.state import open_state
from orchestrator.state.outcomes import OutcomeStore


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
