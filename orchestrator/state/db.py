"""Open, verify and migrate the SQLite state store.

Durability: WAL with ``synchronous=FULL`` fsyncs the WAL on every commit, so a step recorded by
:meth:`StateDb.write` survives a crash or power loss the moment the call returns (that is what lets the
apply journal record intent *before* the act). Each write is its own short ``BEGIN IMMEDIATE``
transaction; concurrent readers (``vmrepair fixes list`` while the daemon applies) never block it.

A store that cannot be opened, fails ``PRAGMA quick_check`` or has a schema newer than this program
raises :class:`StateCorruptError`: vmrepair then refuses to act rather than guess which fixes are
half-applied.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import StateCorruptError, StateError
from orchestrator.fsutil import ensure_private_dir
from orchestrator.state.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000


def _remedy(path: Path) -> str:
    return (f"stop vmrepair, inspect the store with `sqlite3 {path} 'PRAGMA integrity_check'`, then move "
            f"{path} (and its -wal/-shm files) aside; backups of applied fixes stay in "
            f"{path.parent / 'backups'} and can be restored with `vmrepair fixes rollback`")


class StateDb:
    """One connection to the state store. Not shared between threads.

    Raises (every method): StateCorruptError when SQLite reports corruption, StateError for other
    database failures (disk full, permissions, locked beyond the busy timeout).
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._conn = connection

    @contextlib.contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and "malformed" not in text \
                    and "not a database" not in text:
                raise StateError(f"state store {self.path}: {what}: {text}",
                                 remedy="check free space and permissions of the state dir") from exc
            raise StateCorruptError(f"state store {self.path} is corrupt ({what}: {text}); "
                                    "refusing to act", remedy=_remedy(self.path)) from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (and fsynced) when the block exits without error."""
        with self._mapped("write"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._mapped("read"):
            return list(self._conn.execute(sql, params))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> StateDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_state(path: Path, *, check: bool = True) -> StateDb:
    """Open (creating and migrating if needed) the store at ``path``.

    Raises:
        StateCorruptError: not a database, fails the integrity check, or written by a newer vmrepair.
        StateError: the directory cannot be created or the file cannot be opened.
    """
    ensure_private_dir(path.parent)
    is_new = not path.exists()
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state store {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    db = StateDb(path, conn)
    try:
        with db._mapped("open"):
            if is_new:
                path.chmod(0o600)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _configure(db, conn, check=check)
            _migrate(db, conn)
    except BaseException:
        db.close()
        raise
    return db


def _configure(db: StateDb, conn: sqlite3.Connection, *, check: bool) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StateError(f"state store {db.path}: cannot switch to WAL (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if check:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise StateCorruptError(f"state store {db.path} fails its integrity check: {result}; "
                                    "refusing to act", remedy=_remedy(db.path))


def _migrate(db: StateDb, conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateCorruptError(
            f"state store {db.path} has schema version {version}, newer than this vmrepair "
            f"({SCHEMA_VERSION}); refusing to act", remedy="run the vmrepair release that wrote it")
    for index in range(version, SCHEMA_VERSION):
        with db.write() as tx:
            for statement in MIGRATIONS[index].split(";"):
                if statement.strip():
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {index + 1}")
