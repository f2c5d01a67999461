"""The state lock: one mutating process at a time; the second is told who holds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import LockHeldError
from orchestrator.state import StateLock

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
