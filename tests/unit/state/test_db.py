"""The state store: WAL + synchronous=FULL, private, migrated once, and refusing to act when corrupt."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
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


# -- read-only opening (issue 13, item 2) and symlinks (item 11) ------------------------------------


def _tree(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): stat.S_IMODE(p.lstat().st_mode) for p in directory.rglob("*")}


def test_readonly_open_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with open_state(state / "state.db", readonly=True) as db:
        assert db.query("SELECT COUNT(*) FROM transactions")[0][0] == 0
        assert db.path == state / "state.db"
    assert _tree(state) == {}
    assert stat.S_IMODE(state.stat().st_mode) == 0o755


def test_readonly_open_of_a_missing_dir_creates_nothing(tmp_path: Path) -> None:
    with open_state(tmp_path / "absent" / "state.db", readonly=True) as db:
        assert db.query("SELECT COUNT(*) FROM reboots")[0][0] == 0
    assert not (tmp_path / "absent").exists()


def test_readonly_open_reads_what_was_written_and_changes_no_mode(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with open_state(state / "state.db") as db, db.write() as tx:
        tx.execute("INSERT INTO outcomes (strategy, succeeded, at) VALUES ('s', 1, 'now')")
    state.chmod(0o755)
    (state / "state.db").chmod(0o644)
    with open_state(state / "state.db", readonly=True) as db:
        assert db.query("SELECT strategy FROM outcomes")[0][0] == "s"
        with pytest.raises(StateError, match="readonly"), db.write() as tx:
            tx.execute("DELETE FROM outcomes")
    assert stat.S_IMODE(state.stat().st_mode) == 0o755
    assert stat.S_IMODE((state / "state.db").stat().st_mode) == 0o644


def test_readonly_open_of_an_older_schema_migrates_a_copy_only(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()  # an empty database: schema version 0
    with open_state(path, readonly=True) as db:
        assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0


def test_readonly_open_refuses_a_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"not a database at all" * 300)
    with pytest.raises(StateCorruptError, match="refusing to act"):
        open_state(path, readonly=True)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_symlinked_store_is_refused_and_its_target_left_alone(tmp_path: Path, readonly: bool) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "state").mkdir()
    link = tmp_path / "state" / "state.db"
    link.symlink_to(victim)
    with pytest.raises(StateError) as info:
        open_state(link, readonly=readonly)
    assert info.value.message == f"state store {link} is a symbolic link (to {victim}); refusing to follow it"
    assert info.value.remedy == f"remove {link}; vmrepair creates its store there on first use"
    assert victim.read_text() == "precious\n"


def test_a_dangling_symlinked_store_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "state.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(StateError, match="is a symbolic link"):
        open_state(link)
    assert not (tmp_path / "elsewhere.db").exists()


def test_a_full_disk_while_writing_is_a_state_error_naming_free_space(tmp_path: Path) -> None:
    """Issue 13, item 7: SQLite says 'database or disk is full'; the remedy is space, not permissions."""
    db = open_state(tmp_path / "s.db")
    db.query("PRAGMA max_page_count = 40")  # SQLITE_FULL the way a full disk gives it
    with pytest.raises(StateError) as info, db.write() as tx:
        for n in range(2000):
            tx.execute("INSERT INTO outcomes (strategy, succeeded, at) VALUES (?, 1, 'now')",
                       ("x" * 500 + str(n),))
    assert not isinstance(info.value, StateCorruptError)
    assert "database or disk is full" in info.value.message
    assert info.value.remedy == (f"free space in {tmp_path} (see `df -h {tmp_path}`) or set "
                                 "VMREPAIR_STATE_DIR to a directory with room")


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize(("make", "kind"), [(os.mkfifo, "a FIFO"), (Path.mkdir, "a directory")])
def test_a_store_that_is_not_a_regular_file_is_refused(tmp_path: Path, readonly: bool,
                                                       make: Callable[[Path], object], kind: str) -> None:
    """A FIFO as state.db blocked SQLite's open forever (holding the GIL)."""
    path = tmp_path / "state.db"
    make(path)
    with pytest.raises(StateError) as info:
        open_state(path, readonly=readonly)
    assert info.value.message == f"state store {path} is {kind}, not a database file; refusing to open it"


def test_readonly_open_refuses_a_state_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("x")
    with pytest.raises(StateError, match="state exists and is not a directory"):
        open_state(tmp_path / "state" / "state.db", readonly=True)
