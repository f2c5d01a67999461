"""One mutating vmrepair process at a time (``run``, ``fixes rollback``, ``reboot now``, the daemon's
repairs), enforced with ``flock`` on ``<state_dir>/vmrepair.lock``.

flock is released by the kernel when the holder dies, so a crash never leaves a stale lock; the file's
content (pid, command, since) only serves to tell the second process who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
from pathlib import Path

from orchestrator.errors import LockHeldError, StateError
from orchestrator.fsutil import ensure_private_dir, state_os_error
from orchestrator.timestamps import now_timestamp

#: errno of an open with O_NOFOLLOW that found no regular file -> what was there instead.
_NOT_A_FILE = {errno.ELOOP: "a symbolic link", errno.EISDIR: "a directory"}
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


class StateLock:
    """Raises (acquire): LockHeldError naming the holder, StateError if the lock file is unusable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def is_held(self) -> bool:
        return self._fd is not None

    def acquire(self, purpose: str = "") -> None:
        if self._fd is not None:
            return
        ensure_private_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o600)
        except OSError as exc:
            if exc.errno in _NOT_A_FILE:
                raise self._not_a_file(_NOT_A_FILE[exc.errno]) from exc
            raise state_os_error(f"cannot open lock file {self.path}", exc,
                                 directory=self.path.parent) from exc
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # a FIFO or a device: flock and the holder record mean nothing there
            os.close(fd)
            raise self._not_a_file(_KINDS.get(stat.S_IFMT(mode), "a special file"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(
                f"another vmrepair process holds {self.path}: {holder}", holder=holder,
                remedy="wait for it to finish (or stop it); the lock is released when it exits",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise state_os_error(f"cannot lock {self.path}", exc, directory=self.path.parent) from exc
        info = {"pid": os.getpid(), "command": " ".join(sys.argv)[:500], "purpose": purpose,
                "since": now_timestamp()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
        except OSError as exc:
            # Without its holder record the lock would tell the next process nothing: give it up
            # (closing drops the flock) rather than hold it anonymously.
            os.close(fd)
            raise state_os_error(f"cannot write lock file {self.path}", exc,
                                 directory=self.path.parent) from exc
        self._fd = fd

    def _not_a_file(self, kind: str) -> StateError:
        return StateError(f"lock file {self.path} is {kind}, not a regular file; refusing to use it",
                          remedy=f"remove {self.path}; vmrepair creates it on first use")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)   # closing drops the flock
        self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return "unknown holder"
    if not isinstance(data, dict) or "pid" not in data:
        return "unknown holder"
    what = f"pid {data.get('pid')} (`{data.get('command', '?')}`"
    if data.get("purpose"):
        what += f", {data['purpose']}"
    return what + f") since {data.get('since', '?')}"
