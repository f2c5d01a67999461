"""Crash-safe file writes: temp file -> fsync -> rename -> fsync directory.

A reader (or a recovery after a crash) only ever sees the old or the new content, never a torn file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from orchestrator.errors import StateError


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename or unlink inside it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises:
        StateError: the write failed (disk full, permissions); ``path`` keeps its old content.
    """
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:  # missing or unwritable directory: same promise as a failed write
        raise _write_error(path, exc) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> StateError:
    return state_os_error(f"cannot write {path}", exc, directory=path.parent)


def state_os_error(what: str, exc: OSError, *, directory: Path) -> StateError:
    """``what: strerror`` as a StateError with the remedy :func:`state_remedy` gives for its errno."""
    return StateError(f"{what}: {exc.strerror or exc}", remedy=state_remedy(exc.errno, directory))


def state_remedy(err: int | None, directory: Path) -> str:
    """What to do about ``err`` in the state dir: a full disk needs space, a read-only file system a
    remount (running as root would not help), a refused access root."""
    if err in (errno.ENOSPC, errno.EDQUOT):
        return (f"free space in {directory} (see `df -h {directory}`) or set VMREPAIR_STATE_DIR to a "
                "directory with room")
    if err == errno.EROFS:
        return (f"{directory} is on a read-only file system: remount it read-write or set "
                "VMREPAIR_STATE_DIR to a directory on a writable one")
    if err in (errno.EACCES, errno.EPERM):
        return "run as root or set VMREPAIR_STATE_DIR to a directory you can write"
    return f"check free space and permissions of {directory}, or set VMREPAIR_STATE_DIR elsewhere"


def ensure_private_dir(path: Path, *, mode: int = 0o700) -> Path:
    """Create ``path`` (and parents) if needed and force ``mode`` on the leaf.

    Raises:
        StateError: the directory cannot be created or is not a directory.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        if path.is_symlink() or not path.is_dir():
            raise StateError(f"{path} exists and is not a directory", remedy=f"remove {path}")
        path.chmod(mode)
    except FileExistsError as exc:  # mkdir(exist_ok) says so only when a non-directory is in the way
        raise StateError(f"cannot create directory {path}: File exists and is not a directory",
                         remedy=f"remove {path}") from exc
    except OSError as exc:
        raise state_os_error(f"cannot create directory {path}", exc, directory=path) from exc
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (the owner recorded in a work directory's name or a record) still runs.
    A pid we may not signal belongs to a live process of another user."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
