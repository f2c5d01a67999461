"""The state store: WAL + synchronous=FULL, private, migrated once, and refusing to act when corrupt."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from orchestrator.errors import StateCorruptError, StateError
from orchestrator.state import open_state
from orchestrator.state.schema import SCHEMA_VERSION


def test_new_store_is_private_wal_full_sync_and_migrated(tmp_path: Path) -> None:
    db = open_state(tmp_path / "state" / "state.db")
    assert stat.S_IMODE((tmp_path / "state" / "state.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.query("PRAGMA synchronous")[0][0] == 2   # FULL
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sessions", "packages", "transactions", "txn_steps", "reboots", "outcomes"} <= tables


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    open_state(tmp_path / "s.db").close()
    db = open_state(tmp_path / "s.db")
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION


def test_write_rolls_back_on_error(tmp_path: Path) -> None:
    db = open_state(tmp_path / "s.db")
    with pytest.raises(RuntimeError), db.write() as tx:
        tx.execute("INSERT INTO outcomes (strategy, succeeded, at) VALUES ('s', 1, 'now')")
        raise RuntimeError("boom")
    assert db.query("SELECT COUNT(*) FROM outcomes")[0][0] == 0


@pytest.mark.parametrize("content", [b"not a database at all" * 300, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_garbage_store_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(content)
    with pytest.raises(StateCorruptError, match=r"state store .*s\.db .*refusing to act") as info:
        open_state(path)
    assert info.value.remedy is not None and "PRAGMA integrity_check" in info.value.remedy


def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = open_state(path)
    with db.write() as tx:
        for i in range(2000):
            tx.execute("INSERT INTO outcomes (strategy, succeeded, at) VALUES (?, 1, 'now')", (f"s{i}" * 20,))
    db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page: 3 * page + 200] = b"\x13" * 200     # scribble over an index/table page
    path.write_bytes(bytes(data))
    with pytest.raises(StateCorruptError):
        db = open_state(path)
        db.query("SELECT * FROM outcomes")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_state(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateCorruptError, match="newer than this vmrepair"):
        open_state(path)


def test_unwritable_location_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="cannot create directory"):
        open_state(tmp_path / "file" / "s.db")
