"""Crash-safe file writes: temp file -> fsync -> rename -> fsync directory.

A reader (or a recovery after a crash) only ever sees the old or the new content, never a torn file.
"""

from __future__ import annotations

import contextlib
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
    return StateError(
        f"cannot write {path}: {exc.strerror or exc}",
        remedy="check free space and permissions of the state directory",
    )


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
    except OSError as exc:
        raise StateError(
            f"cannot create directory {path}: {exc.strerror or exc}",
            remedy="run as root or set VMREPAIR_STATE_DIR to a writable directory",
        ) from exc
    return path
