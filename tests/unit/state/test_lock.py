"""The state lock: one mutating process at a time; the second is told who holds it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from orchestrator.errors import LockHeldError, StateError
from orchestrator.state import StateLock
from orchestrator.state import lock as lock_module

HOLD = """
import sys, time
from pathlib import Path
from orchestrator.state import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire("repairing vm:patient")
print("held", flush=True)
time.sleep(60)
"""


def test_second_process_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "vmrepair.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(LockHeldError) as info:
            StateLock(path).acquire()
        assert f"pid {holder.pid}" in info.value.message
        assert "repairing vm:patient" in info.value.message
        assert info.value.remedy == "wait for it to finish (or stop it); the lock is released when it exits"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    # The kernel dropped the lock with the killed holder: no stale lock.
    with StateLock(path) as lock:
        assert lock.is_held


def test_lock_is_reentrant_within_a_process_and_released(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "l")
    lock.acquire()
    lock.acquire()
    lock.release()
    assert not lock.is_held
    assert (tmp_path / "l").read_bytes() == b""


# -- a full or read-only disk (issue 13, item 7) ------------------------------------------------------


def _failing(err: int) -> Callable[..., NoReturn]:
    def fail(*args: object, **kwargs: object) -> NoReturn:
        raise OSError(err, os.strerror(err))

    return fail


def test_disk_full_while_writing_the_lock_file_is_a_state_error(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vmrepair.lock"
    monkeypatch.setattr(lock_module.os, "pwrite", _failing(errno.ENOSPC))
    lock = StateLock(path)
    with pytest.raises(StateError) as info:
        lock.acquire("run")
    assert info.value.message == f"cannot write lock file {path}: No space left on device"
    assert info.value.remedy == (f"free space in {tmp_path} (see `df -h {tmp_path}`) or set "
                                 "VMREPAIR_STATE_DIR to a directory with room")
    assert not lock.is_held
    monkeypatch.undo()
    with StateLock(path) as again:  # the failed attempt released the flock
        assert again.is_held


@pytest.mark.parametrize("call", ["open", "ftruncate"])
def test_read_only_file_system_names_the_real_remedy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     call: str) -> None:
    path = tmp_path / "vmrepair.lock"
    monkeypatch.setattr(lock_module.os, call, _failing(errno.EROFS))
    with pytest.raises(StateError) as info:
        StateLock(path).acquire()
    assert "Read-only file system" in info.value.message
    assert info.value.remedy == (f"{tmp_path} is on a read-only file system: remount it read-write or set "
                                 "VMREPAIR_STATE_DIR to a directory on a writable one")


def test_read_only_file_system_while_creating_the_state_dir(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(Path, "mkdir", _failing(errno.EROFS))
    with pytest.raises(StateError) as info:
        StateLock(state / "vmrepair.lock").acquire()
    assert info.value.message == f"cannot create directory {state}: Read-only file system"
    assert info.value.remedy is not None and "run as root" not in info.value.remedy
    assert "read-only file system" in info.value.remedy


def test_permission_denied_still_suggests_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module.os, "open", _failing(errno.EACCES))
    with pytest.raises(StateError) as info:
        StateLock(tmp_path / "vmrepair.lock").acquire()
    assert info.value.remedy == "run as root or set VMREPAIR_STATE_DIR to a directory you can write"


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: p.symlink_to(p.parent / "elsewhere"), "a symbolic link"),
    (Path.mkdir, "a directory"),
    (os.mkfifo, "a FIFO"),
])
def test_a_lock_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, make: Callable[[Path], object],
                                                           kind: str) -> None:
    path = tmp_path / "vmrepair.lock"
    make(path)
    with pytest.raises(StateError) as info:
        StateLock(path).acquire()
    assert info.value.message == f"lock file {path} is {kind}, not a regular file; refusing to use it"
    assert info.value.remedy == f"remove {path}; vmrepair creates it on first use"
    assert not (tmp_path / "elsewhere").exists()
