"""File plumbing of :mod:`orchestrator.jsonl`: opening safely, unique names, verified copies, and the
one place where OSError becomes :class:`~orchestrator.errors.AuditError`.

Names are resolved against a directory file descriptor with ``O_NOFOLLOW`` (as the target agent
does), so a symlink swapped in beside a log cannot redirect a backup, a quarantine file or the
repaired copy; the directory itself is reached one component at a time without following a symlink
either (issue 13), so a symlinked parent cannot redirect them to another directory. The small
primitives are the agent's own (it is a plain stdlib module).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.agent.remote import vmrepair_agent as agent
from orchestrator.errors import AuditError

CHUNK = 1024 * 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NEW_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

set_owner_mode = agent.set_owner_mode
temp_name = agent.temp_name
unlink_quietly = agent.unlink_quietly
write_all = agent.write_all


def io_error(exc: OSError, path: Path, doing: str) -> AuditError:
    """``cannot <doing> <path>: <reason>`` with a remedy chosen by errno."""
    where = path.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        remedy = f"free space on the filesystem holding {where} (df -h {where}), then run again"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        remedy = f"run as root (or as the owner of {where})"
    elif exc.errno == errno.EROFS:
        remedy = f"{where} is on a read-only filesystem: remount it read-write first"
    elif exc.errno == errno.ELOOP:
        remedy = f"{path} is a symlink, which is refused: name the file it points to"
    else:
        remedy = f"check {path} and its directory (dmesg for I/O errors)"
    return AuditError(f"cannot {doing} {path}: {exc.strerror or exc}", remedy=remedy)


@contextlib.contextmanager
def open_directory(path: Path, *, for_path: Path | None = None) -> Iterator[int]:
    """A file descriptor of directory ``path``, reached without following any symlink; ``for_path``
    (a file in it) is what messages name.

    Raises:
        AuditError: the directory cannot be opened, or a component of ``path`` is a symlink or not a
            directory (the message names both).
    """
    try:
        dfd = walk_directory(path, for_path=for_path)
    except OSError as exc:
        raise io_error(exc, path, "open the directory") from exc
    try:
        yield dfd
    finally:
        os.close(dfd)


def walk_directory(path: Path, *, for_path: Path | None = None) -> int:
    """Open directory ``path`` one component at a time, each relative to the descriptor of the one
    before and with ``O_NOFOLLOW`` (the agent's ``open_dir``, for relative paths too: they start at
    the working directory, which the kernel has already resolved). The caller closes the result.

    Raises:
        OSError: a component is missing (FileNotFoundError) or cannot be opened.
        AuditError: a component is a symlink or not a directory.
    """
    path = Path(path)
    fd = os.open("/" if path.is_absolute() else ".", DIR_FLAGS)
    current = Path(path.anchor or ".")
    try:
        for name in path.parts[1:] if path.is_absolute() else path.parts:
            current /= name
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                found = os.stat(name, dir_fd=fd, follow_symlinks=False)
                raise _not_a_directory(for_path or path, current, found) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_directory(path: Path, component: Path, st: os.stat_result) -> AuditError:
    if not stat.S_ISLNK(st.st_mode):
        return AuditError(f"refusing {path}: {component} is not a directory", remedy="check the path")
    try:
        target = f" (to {component.readlink()})"
    except OSError:
        target = ""
    return AuditError(f"refusing {path}: {component} is a symlink{target}, which is not followed",
                      remedy=f"name the file by its real path, {Path(os.path.realpath(path))}: a symlinked "
                             "directory could redirect the backup, the quarantine and the repaired file")


def open_regular(name: str | Path, *, dir_fd: int | None = None, flags: int = READ_FLAGS,
                 shown: Path | None = None) -> tuple[int, os.stat_result]:
    """Open a regular file without following a symlink; (fd, its stat).

    Raises:
        FileNotFoundError: there is no such file (callers decide whether that is an error).
        AuditError: it is a symlink or not a regular file, or cannot be opened.
    """
    shown = shown or Path(name)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise io_error(exc, shown, "open") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise AuditError(f"{shown} is not a regular file", remedy="name a JSON-lines file")
    return fd, st


def create_unique(dfd: int, stem: str, suffix: str = "") -> tuple[str, int]:
    """A new file ``stem[-N]suffix`` in ``dfd`` (read-write, 0600); never an existing name.

    Raises:
        OSError: it cannot be created.
    """
    try:
        return agent.create_unique(dfd, stem, suffix)
    except agent.Failure as exc:  # 100 names taken: treat like a full directory
        raise OSError(errno.EEXIST, exc.message) from exc


def sha256_range(fd: int, size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, CHUNK):
        digest.update(os.pread(fd, min(CHUNK, size - offset), offset))
    return digest.hexdigest()


def copy_range(src: int, dst: int, size: int) -> tuple[str, int]:
    """Copy the first ``size`` bytes of ``src`` to ``dst``; (sha256 of them, bytes copied)."""
    digest, copied = hashlib.sha256(), 0
    while copied < size:
        chunk = os.pread(src, min(CHUNK, size - copied), copied)
        if not chunk:
            break  # the source shrank; the caller compares the count
        digest.update(chunk)
        write_all(dst, chunk)
        copied += len(chunk)
    return digest.hexdigest(), copied
