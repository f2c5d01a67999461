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
import errno
import sqlite3
import stat
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import StateCorruptError, StateError
from orchestrator.fsutil import ensure_private_dir, state_os_error, state_remedy
from orchestrator.state.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _remedy(path: Path) -> str:
    return (f"stop vmrepair, inspect the store with `sqlite3 {path} 'PRAGMA integrity_check'`, then move "
            f"{path} (and its -wal/-shm files) aside; backups of applied fixes stay in "
            f"{path.parent / 'backups'} and can be restored with `vmrepair fixes rollback`")


def _io_remedy(exc: sqlite3.OperationalError, path: Path) -> str:
    """fsutil's remedy for the errno SQLite's error code stands for (a full disk needs space, ...)."""
    err = {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_READONLY: errno.EACCES,
           sqlite3.SQLITE_PERM: errno.EACCES, sqlite3.SQLITE_CANTOPEN: errno.EACCES}
    return state_remedy(err.get(getattr(exc, "sqlite_errorcode", -1)), path.parent)


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
                                 remedy=_io_remedy(exc, self.path)) from exc
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
                # SQLite already rolled back after some errors (SQLITE_FULL, SQLITE_IOERR): a second
                # ROLLBACK would fail and hide the real error behind "no transaction is active".
                if self._conn.in_transaction:
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


def open_state(path: Path, *, check: bool = True, readonly: bool = False) -> StateDb:
    """Open (creating and migrating if needed) the store at ``path``.

    ``readonly`` is for commands that only look (``fixes list``, ``reboot status``): nothing is
    created, chmodded or migrated on disk. A missing store reads as an empty one, and a store of an
    older schema is migrated in a copy in memory. (SQLite itself may add the store's ``-wal`` and
    ``-shm`` companions, with the store's own mode: reading a WAL database beside a writer needs them.)

    Raises:
        StateCorruptError: not a database, fails the integrity check, or written by a newer vmrepair.
        StateError: ``path`` is a symbolic link, the directory cannot be created or the file cannot
            be opened (``readonly``: any write through the returned store).
    """
    _check_store_path(path)
    if readonly:
        return _open_readonly(path, check=check)
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


def _check_store_path(path: Path) -> None:
    """Refuse a store that is not a regular file, before SQLite opens it.

    SQLite follows a symlink and would turn its target (any file root can write) into a database; a
    FIFO would block its open forever (holding the GIL); a directory or a device is no store at all.
    The check and SQLite's open are two steps; the state dir is private (0700) to the user vmrepair runs
    as, so nobody else can swap the file in between.
    """
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet; a state dir that is a file is reported where it is created
    except OSError as exc:  # a symlink loop in the path, no permission ...
        raise state_os_error(f"cannot look at state store {path}", exc, directory=path.parent) from exc
    if stat.S_ISLNK(mode):
        try:
            target = str(path.readlink())
        except OSError:
            target = "?"
        raise StateError(f"state store {path} is a symbolic link (to {target}); refusing to follow it",
                         remedy=f"remove {path}; vmrepair creates its store there on first use")
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise StateError(f"state store {path} is {kind}, not a database file; refusing to open it",
                         remedy=f"move {path} aside; vmrepair creates its store there on first use")


def _open_readonly(path: Path, *, check: bool) -> StateDb:
    if path.parent.exists() and not path.parent.is_dir():
        raise StateError(f"{path.parent} exists and is not a directory",
                         remedy=f"set VMREPAIR_STATE_DIR to a directory, or remove {path.parent}")
    if not path.exists():
        # Nothing recorded yet: an empty store in memory answers every query with nothing.
        memory = sqlite3.connect(":memory:", isolation_level=None)
        memory.row_factory = sqlite3.Row
        db = StateDb(path, memory)
        _migrate(db, memory)
        return db
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state store {path}: {exc}",
                         remedy="run as root or as the user that owns the state dir") from exc
    conn.row_factory = sqlite3.Row
    db = StateDb(path, conn)
    try:
        with db._mapped("open"):
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if check:
                _quick_check(db, conn)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version < SCHEMA_VERSION:
                memory = sqlite3.connect(":memory:", isolation_level=None)
                memory.row_factory = sqlite3.Row
                conn.backup(memory)
                conn.close()
                db = StateDb(path, memory)
            _migrate(db, db._conn)
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
        _quick_check(db, conn)


def _quick_check(db: StateDb, conn: sqlite3.Connection) -> None:
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
