"""Hostile state dirs, stores and lock holders (issue 13, items 2, 3, 7, 11): every case runs the real
CLI and asserts the exit code and the message a user sees. Read-only commands create and chmod
nothing; a store or lock file that is not what it should be is refused by name; a full or read-only
disk names the remedy that fits; text from the store or a lock holder is shown, never interpreted."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.cli import output
from orchestrator.errors import StateError
from orchestrator.state import lock as lock_module
from orchestrator.state import open_state
from orchestrator.state.schema import SCHEMA_VERSION
from orchestrator.state.transactions import TransactionStore
from tests.hostile.conftest import CliResult

Cli = Callable[..., CliResult]
EXIT_STATE = 6
REMOVE_STORE = "remedy: move {db} aside; vmrepair creates its store there on first use"


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def state(hostile_env: Path) -> Path:
    return hostile_env / "state"


def _tree(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): stat.S_IMODE(p.lstat().st_mode) for p in directory.rglob("*")}


# -- read-only commands create and chmod nothing (item 2) -----------------------------------------

READ_ONLY = [
    (["fixes", "list"], 0, "no fix transactions"),
    (["fixes", "list", "--json"], 0, ""),
    (["fixes", "list", "--target", "[/x]", "--state", "committed"], 0, "no fix transactions"),
    (["fixes", "show", "tx-0123456789ab"], EXIT_STATE, "error: no fix transaction 'tx-0123456789ab'"),
    (["reboot", "status"], 0, "no reboots pending"),
]


@pytest.mark.parametrize(("argv", "code", "message"), READ_ONLY)
def test_read_only_command_on_an_existing_0755_state_dir(cli: Cli, state: Path, argv: list[str], code: int,
                                                        message: str) -> None:
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    result = cli(*argv)
    assert (result.code, message in _flat(result.err)) == (code, True), result.text
    assert stat.S_IMODE(state.stat().st_mode) == 0o755
    assert _tree(state) == {}


@pytest.mark.parametrize(("argv", "code", "message"), READ_ONLY)
def test_read_only_command_leaves_a_missing_state_dir_missing(cli: Cli, state: Path, argv: list[str],
                                                              code: int, message: str) -> None:
    result = cli(*argv)
    assert (result.code, message in _flat(result.err)) == (code, True), result.text
    assert not state.exists()


def test_read_only_command_keeps_modes_of_an_existing_store(cli: Cli, state: Path) -> None:
    open_state(state / "state.db").close()
    state.chmod(0o755)
    (state / "state.db").chmod(0o644)
    assert cli("fixes", "list").code == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o755
    assert stat.S_IMODE((state / "state.db").stat().st_mode) == 0o644


# -- the state dir and the store are not what they should be (items 7, 11) -------------------------

def _store_symlink(state: Path) -> None:
    state.mkdir()
    (state.parent / "victim.txt").write_text("precious\n")
    (state / "state.db").symlink_to(state.parent / "victim.txt")


def _store_dangling(state: Path) -> None:
    state.mkdir()
    (state / "state.db").symlink_to(state.parent / "created-by-sqlite.db")


def _store_dir(state: Path) -> None:
    (state / "state.db").mkdir(parents=True)


def _store_fifo(state: Path) -> None:
    state.mkdir()
    os.mkfifo(state / "state.db")


def _store_garbage(state: Path) -> None:
    state.mkdir()
    (state / "state.db").write_bytes(b"not a database at all" * 300)


def _store_newer(state: Path) -> None:
    open_state(state / "state.db").close()
    conn = sqlite3.connect(state / "state.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()


STORES = [
    pytest.param(_store_symlink, "state store {db} is a symbolic link (to {victim}); refusing to follow "
                 "it remedy: remove {db}; vmrepair creates its store there on first use", id="symlink"),
    pytest.param(_store_dangling,
                 "state store {db} is a symbolic link (to {dangling}); refusing to follow it",
                 id="dangling-symlink"),
    pytest.param(_store_dir, "state store {db} is a directory, not a database file; refusing to open it "
                 + REMOVE_STORE, id="directory"),
    pytest.param(_store_fifo, "state store {db} is a FIFO, not a database file; refusing to open it "
                 + REMOVE_STORE, id="fifo"),
    pytest.param(_store_garbage,
                 "state store {db} is corrupt (open: file is not a database); refusing to act remedy: stop "
                 "vmrepair, inspect the store with `sqlite3 {db} 'PRAGMA integrity_check'`", id="garbage"),
    pytest.param(_store_newer,
                 f"state store {{db}} has schema version {SCHEMA_VERSION + 7}, newer than this vmrepair "
                 f"({SCHEMA_VERSION}); refusing to act remedy: run the vmrepair release that wrote it",
                 id="newer-schema"),
]


@pytest.mark.parametrize("argv", [["fixes", "list"], ["fixes", "recover"]], ids=["read-only", "mutating"])
@pytest.mark.parametrize(("make", "message"), STORES)
def test_a_store_that_cannot_be_trusted_is_refused(cli: Cli, state: Path, argv: list[str],
                                                   make: Callable[[Path], None], message: str) -> None:
    make(state)
    result = cli(*argv)
    db = state / "state.db"
    expected = message.format(db=db, victim=state.parent / "victim.txt",
                              dangling=state.parent / "created-by-sqlite.db")
    assert result.code == EXIT_STATE, result.text
    assert f"error: {expected}" in _flat(result.err)
    assert not (state.parent / "created-by-sqlite.db").exists()
    if (state.parent / "victim.txt").exists():
        assert (state.parent / "victim.txt").read_text() == "precious\n"


def test_state_dir_that_is_a_file(cli: Cli, state: Path) -> None:
    state.write_text("x")
    listing = cli("fixes", "list")
    assert (listing.code, _flat(listing.err)) == (
        EXIT_STATE, f"error: {state} exists and is not a directory remedy: set VMREPAIR_STATE_DIR to a "
        f"directory, or remove {state}")
    recover = cli("fixes", "recover")
    assert (recover.code, _flat(recover.err)) == (EXIT_STATE, f"error: cannot create directory {state}: File "
                                                  f"exists and is not a directory remedy: remove {state}")


def test_state_dir_that_is_a_symlink_is_refused_by_mutating_commands(cli: Cli, state: Path) -> None:
    (state.parent / "real").mkdir()
    state.symlink_to(state.parent / "real")
    result = cli("fixes", "recover")
    assert (result.code, _flat(result.err)) == (EXIT_STATE, f"error: {state} exists and is not a directory "
                                                f"remedy: remove {state}")
    assert list((state.parent / "real").iterdir()) == []


def test_markup_in_the_state_dir_path(cli: Cli, hostile_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = hostile_env / "[" / "x]"   # the path holds "[/x]", which rich reads as a closing tag
    state.parent.mkdir()
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(state))
    _store_symlink(state)
    result = cli("fixes", "list")
    assert result.code == EXIT_STATE
    assert f"error: state store {state / 'state.db'} is a symbolic link" in _flat(result.err)


# -- the lock file ------------------------------------------------------------------------------------

def _lock_symlink(lock: Path) -> None:
    lock.symlink_to(lock.parent / "elsewhere")


def _lock_fifo(lock: Path) -> None:
    os.mkfifo(lock)


@pytest.mark.parametrize(("make", "kind"), [(_lock_symlink, "a symbolic link"), (Path.mkdir, "a directory"),
                                            (_lock_fifo, "a FIFO")])
def test_a_lock_file_that_is_no_file(cli: Cli, state: Path, make: Callable[[Path], object],
                                     kind: str) -> None:
    state.mkdir()
    lock = state / "vmrepair.lock"
    make(lock)
    result = cli("fixes", "recover")
    assert (result.code, _flat(result.err)) == (
        EXIT_STATE, f"error: lock file {lock} is {kind}, not a regular file; refusing to use it "
        f"remedy: remove {lock}; vmrepair creates it on first use")
    assert not (state / "elsewhere").exists()


def _failing(err: int, call: str) -> Callable[..., object]:
    """``os.<call>`` failing with ``err`` (for open: only for the lock file; the config is read first)."""
    real = getattr(os, call)

    def fail(*args: object, **kwargs: object) -> object:
        if call == "open" and not str(args[0]).endswith("vmrepair.lock"):
            return real(*args, **kwargs)
        raise OSError(err, os.strerror(err))

    return fail


DISK_ERRORS = [
    ("pwrite", errno.ENOSPC, "cannot write lock file {lock}: No space left on device",
     "free space in {state} (see `df -h {state}`) or set VMREPAIR_STATE_DIR to a directory with room"),
    ("pwrite", errno.EDQUOT, "cannot write lock file {lock}: Disk quota exceeded",
     "free space in {state} (see `df -h {state}`)"),
    ("ftruncate", errno.EROFS, "cannot write lock file {lock}: Read-only file system",
     "{state} is on a read-only file system: remount it read-write or set VMREPAIR_STATE_DIR to a directory "
     "on a writable one"),
    ("open", errno.EROFS, "cannot open lock file {lock}: Read-only file system",
     "{state} is on a read-only file system"),
    ("open", errno.EACCES, "cannot open lock file {lock}: Permission denied",
     "run as root or set VMREPAIR_STATE_DIR to a directory you can write"),
    ("open", errno.ENOSPC, "cannot open lock file {lock}: No space left on device", "free space in {state}"),
]


@pytest.mark.parametrize("case", DISK_ERRORS, ids=lambda case: f"{case[0]}-{errno.errorcode[case[1]]}")
def test_a_full_or_read_only_disk_names_the_remedy(cli: Cli, state: Path, monkeypatch: pytest.MonkeyPatch,
                                                   case: tuple[str, int, str, str]) -> None:
    call, err, message, remedy = case
    state.mkdir()
    lock = state / "vmrepair.lock"
    monkeypatch.setattr(lock_module.os, call, _failing(err, call))
    result = cli("fixes", "recover")
    monkeypatch.undo()
    assert result.code == EXIT_STATE
    err_text = _flat(result.err)
    assert f"error: {message.format(lock=lock)} remedy: {remedy.format(state=state)}" in err_text
    assert "run as root" not in err_text or err == errno.EACCES


def test_a_full_disk_in_the_store_names_free_space(cli: Cli, state: Path) -> None:
    """SQLite rolls back by itself on SQLITE_FULL; a second ROLLBACK used to hide the real error behind
    'no transaction is active'. Afterwards the store is intact and the CLI reads it."""
    db = open_state(state / "state.db")
    db.query("PRAGMA max_page_count = 40")  # SQLITE_FULL the way a full disk gives it
    store = TransactionStore(db)
    with pytest.raises(StateError) as info:
        for n in range(500):
            store.create(package_id="p" * 2000 + str(n), package_dir="/p", target="local", component="c",
                         backup_dir="/b", ops_total=1)
    db.close()
    assert "database or disk is full" in info.value.message
    assert info.value.remedy == (f"free space in {state} (see `df -h {state}`) or set VMREPAIR_STATE_DIR to "
                                 "a directory with room")
    result = cli("fixes", "list", "--json")
    assert result.code == 0
    assert len(json.loads(result.out)["fixes"]) >= 1


# -- lock contention with a hostile holder (item 3) ---------------------------------------------------

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, bytes.fromhex(sys.argv[2]), 0)
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held_lock(state: Path) -> Iterator[Callable[[bytes], Path]]:
    """Start a process that holds the state lock and wrote ``content`` as its holder record."""
    holders: list[subprocess.Popen[bytes]] = []

    def hold(content: bytes) -> Path:
        state.mkdir(exist_ok=True)
        lock = state / "vmrepair.lock"
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), content.hex()],
                                  stdout=subprocess.PIPE)
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        return lock

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def _record(**fields: object) -> bytes:
    return json.dumps({"pid": 4242, "since": "2026-12-06T00:00:00+00:00", **fields}).encode() + b"\n"


HOLDERS = [
    pytest.param(_record(command="vmrepair run --target '[/x]'", purpose="[bold red]evil[/]"),
                 "pid 4242 (`vmrepair run --target '[/x]'`, [bold red]evil[/]) since "
                 "2026-12-06T00:00:00+00:00",
                 id="markup-argv"),
    pytest.param(_record(command="vmrepair \x1b[2J\x1b]0;owned\x07 run"),
                 "pid 4242 (`vmrepair \\x1b[2J\\x1b]0;owned\\x07 run`) since", id="terminal-escapes"),
    pytest.param(_record(command=":smile: [/] \\"), "pid 4242 (`:smile: [/] \\`) since",
                 id="emoji-and-backslash"),
    pytest.param(b"not json at all [/x]", "unknown holder", id="not-json"),
    pytest.param(b'["a", "list"]', "unknown holder", id="json-list"),
    pytest.param(_record(command="x" * 10_000), "unknown holder", id="record-past-the-read-cap"),
    pytest.param(b"", "unknown holder", id="empty"),
    pytest.param(json.dumps({"pid": {"[/x]": 1}}).encode(), "pid {'[/x]': 1} (`?`) since ?",
                 id="pid-is-a-dict"),
]


@pytest.mark.parametrize(("content", "holder"), HOLDERS)
def test_lock_held_by_a_hostile_holder(cli: Cli, held_lock: Callable[[bytes], Path], content: bytes,
                                       holder: str) -> None:
    lock = held_lock(content)
    result = cli("fixes", "recover")
    assert result.code == EXIT_STATE, result.text
    err = _flat(result.err)
    assert f"error: another vmrepair process holds {lock}: {holder}" in err
    assert "remedy: wait for it to finish (or stop it); the lock is released when it exits" in err
    assert "\x1b" not in result.text


def test_lock_holder_in_json(cli: Cli, held_lock: Callable[[bytes], Path]) -> None:
    held_lock(_record(command="vmrepair [/x] \x1b[2J"))
    result = cli("fixes", "recover", "--json")
    assert result.code == EXIT_STATE
    data = json.loads(result.out)
    assert data["error"] == "LockHeldError"
    assert data["holder"] == "pid 4242 (`vmrepair [/x] \x1b[2J`) since 2026-12-06T00:00:00+00:00"


# -- text from the store is shown, never interpreted (item 3) -----------------------------------------

def test_markup_and_escapes_stored_in_a_transaction(cli: Cli, state: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Room for every cell: nothing is cut with "…". Through rich's record of an explicit width, not the
    # `width` property: undoing a property patch would set the width it computed (fixing it for good).
    monkeypatch.setattr(output.out_console, "_width", 250)
    store = TransactionStore(open_state(state / "state.db"))
    txn = store.create(package_id="pkg", package_dir="/p", target="vm:[/x]", component="[bold]web\x1b[31m",
                       backup_dir="/b", ops_total=1, strategy=":smile:[/]")
    listing = cli("fixes", "list")
    assert listing.code == 0
    for text in ("vm:[/x]", "[bold]web\\x1b[31m", ":smile:[/]"):
        assert f" {text} " in listing.out
    shown = cli("fixes", "show", txn.id)
    assert shown.code == 0
    assert "vm:[/x]" in shown.err
    assert "[bold]web\\x1b[31m" in shown.err
    assert "\x1b" not in listing.text + shown.text


@pytest.mark.parametrize("txn_id", ["[/x]", "tx-[/x]", "../../etc/passwd", "tx-\x1b[2J", ""])
def test_a_hostile_transaction_id(cli: Cli, txn_id: str) -> None:
    result = cli("fixes", "show", txn_id)
    assert result.code == 2
    assert "error: invalid transaction id" in _flat(result.err)
    assert "remedy: ids look like tx-0123456789ab; see `vmrepair fixes list`" in _flat(result.err)
    assert "\x1b" not in result.text
