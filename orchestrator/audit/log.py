"""The audit log: an append-only, hash-chained JSON-lines file (record format in :mod:`.record`).

An append, safe with any number of processes writing at once (the daemon and CLI commands):

1. open the file ``O_APPEND`` (created 0600; directories vmrepair creates are 0700), refusing a
   symlink or anything but a regular file;
2. ``flock(LOCK_EX)`` it, then check the path still names the file that was opened: logrotate or
   ``vmrepair log repair`` may have replaced it while we waited, and a record written into the old
   inode would be lost. If so, start again on the new file;
3. read only the tail, backwards, to find the last well-formed record (its seq and hash);
4. write the new line(s) with ONE ``os.write``. A short write (disk full) is truncated away while we
   still hold the lock, so no half record stays behind;
5. ``durable=True`` fsyncs the file. Creating the file always fsyncs its directory too: otherwise a
   later durable record could be fsynced into a file whose name a crash then loses.

**Damaged tail.** If the file ends in a torn line (no newline: a crash or full disk mid-write) or in
lines that are not well-formed records, the writer neither chains onto the garbage nor refuses to
log (an audit log that stops at the first crash hides everything after it). In the same single
write it ends the torn line with a newline, appends a ``chain_break`` record (component ``audit``,
status ``warning``) chained onto the last well-formed record and naming the damaged byte range, then
the record asked for. The chain stays intact across the damage; ``vmrepair log verify`` still reports
the damaged lines (exit 21) until ``vmrepair log repair`` quarantines them. When no well-formed record
is found in the last :data:`TAIL_WINDOW` bytes, the ``chain_break`` record restarts the chain at seq 1
from the genesis hash; verify then reports a broken chain, which ``log repair`` acknowledges (see
:mod:`.chain`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import logging
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.audit.record import (
    AUDIT_COMPONENT,
    CHAIN_BREAK_EVENT,
    GENESIS_HASH,
    MAX_RECORD,
    encode_record,
    line_hash,
    parse_record,
)
from orchestrator.errors import AuditError
from orchestrator.fsutil import fsync_dir
from orchestrator.timestamps import format_timestamp

log = logging.getLogger(__name__)

#: How far back the writer looks for the last well-formed record.
TAIL_WINDOW = 1024 * 1024
TAIL_CHUNK = 64 * 1024
#: Times the file may be replaced under us (rotation) during one append before we give up.
MAX_REOPEN = 5
# O_NONBLOCK: a fifo put in place of the log must not hang the daemon on open.
OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _Tail:
    """What an append needs to know about the end of the file."""

    seq: int = 0
    hash: str = GENESIS_HASH
    #: The file does not end with a newline.
    torn: bool = False
    #: Offset of the damaged bytes after the last well-formed record (None: there are none).
    damaged_from: int | None = None
    damage: str = ""


class AuditLog:
    """:class:`~orchestrator.audit.sink.AuditSink` writing the hash-chained file at ``path``."""

    def __init__(self, path: Path, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.path = Path(path)
        self._clock = clock

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def record(
        self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """Append one record (strings from guests welcome: they are escaped and capped).

        Raises:
            AuditError: the record cannot be written (disk full, permission denied, read-only
                filesystem, the path is a symlink or not a regular file); names the path and remedy.
        """
        timestamp = format_timestamp(self._clock())
        try:
            self._append(timestamp, event, component, status, details or {}, durable=durable)
        except OSError as exc:
            raise self._error(exc) from exc

    def _append(self, timestamp: str, event: str, component: str, status: str,
                details: Mapping[str, Any], *, durable: bool) -> None:
        self._ensure_directory()
        for _ in range(MAX_REOPEN):
            fd, created = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not self._names(fd):
                    continue
                size = os.fstat(fd).st_size
                tail = read_tail(fd, size)
                lines = []
                seq, prev = tail.seq, tail.hash
                if tail.damaged_from is not None:
                    lines.append(encode_record(
                        seq=seq + 1, prev=prev, timestamp=timestamp, event=CHAIN_BREAK_EVENT,
                        component=AUDIT_COMPONENT, status="warning",
                        details={"reason": tail.damage, "damaged_from_byte": tail.damaged_from,
                                 "damaged_bytes": size - tail.damaged_from, "resumes_after_seq": seq}))
                    seq, prev = seq + 1, line_hash(lines[-1])
                lines.append(encode_record(seq=seq + 1, prev=prev, timestamp=timestamp, event=event,
                                           component=component, status=status, details=details))
                data = (b"\n" if tail.torn else b"") + b"".join(line + b"\n" for line in lines)
                written = os.write(fd, data)
                if written != len(data):
                    # Disk full mid-record. We hold the lock, so nobody appended after our bytes.
                    os.ftruncate(fd, size)
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
                if durable:
                    os.fsync(fd)
                if created:
                    fsync_dir(self.path.parent)
                return
            finally:
                os.close(fd)  # releases the lock
        raise AuditError(f"audit log {self.path} was replaced {MAX_REOPEN} times during one append",
                         remedy="check what keeps rotating or recreating it")

    def _ensure_directory(self) -> None:
        missing = []
        directory = self.path.parent
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue  # another process was quicker (or it is a file: the open will say so)
            directory.chmod(0o700)  # mkdir's mode went through the umask
            fsync_dir(directory.parent)

    def _open(self) -> tuple[int, bool]:
        try:
            fd, created = os.open(self.path, OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            fd, created = os.open(self.path, OPEN_FLAGS), False
        try:
            if created:
                os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
            is_regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except BaseException:
            os.close(fd)
            raise
        if not is_regular:
            os.close(fd)
            raise AuditError(f"audit log {self.path} is not a regular file",
                             remedy="move it away, or set audit.path in config.yaml to a file")
        return fd, created

    def _names(self, fd: int) -> bool:
        """The path still names the file open on ``fd`` (not rotated or replaced meanwhile)."""
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino)

    def _error(self, exc: OSError) -> AuditError:
        where = self.path.parent
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            remedy = f"free space on the filesystem holding {where} (df -h {where})"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            remedy = "run vmrepair as root, or set audit.path in config.yaml to a file this user can write"
        elif exc.errno == errno.EROFS:
            remedy = f"{where} is on a read-only filesystem: remount it read-write or set audit.path"
        elif exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory, or a fifo nobody reads
            remedy = f"{self.path} is not a regular file: move it away, or set audit.path in config.yaml"
        elif exc.errno == errno.ELOOP:
            remedy = f"{self.path} is a symlink, which is refused: replace it with a regular file"
        else:
            remedy = f"check {self.path} and its directory"
        log.debug("audit append to %s failed", self.path, exc_info=exc)
        return AuditError(f"cannot append to audit log {self.path}: {exc.strerror or exc}", remedy=remedy)


def read_tail(fd: int, size: int) -> _Tail:
    """Find the last well-formed record of the first ``size`` bytes of ``fd``, reading backwards."""
    if size == 0:
        return _Tail()
    torn = os.pread(fd, 1, size - 1) != b"\n"
    damaged_from = None
    for start, line in _lines_backwards(fd, size, torn=torn):
        record = parse_record(line) if line is not None else None
        if record is not None:
            if damaged_from is None:
                return _Tail(record.seq, record.hash, torn)
            damage = "torn last line" if torn else "last line(s) not a well-formed audit record"
            return _Tail(record.seq, record.hash, torn, damaged_from, damage)
        damaged_from = start
    if damaged_from is None:  # one line longer than the whole window
        damaged_from = max(0, size - TAIL_WINDOW)
    return _Tail(torn=torn, damaged_from=damaged_from,
                 damage=f"no well-formed audit record in the last {TAIL_WINDOW} bytes; chain restarts")


def _lines_backwards(fd: int, size: int, *, torn: bool) -> Iterator[tuple[int, bytes | None]]:
    """(start offset, line) from the last line back, within TAIL_WINDOW; None for a line too long
    to be a record (its bytes are not kept). ``torn``: the file does not end with a newline."""
    pos = size if torn else size - 1
    pending, oversized = b"", False  # bytes [pos, end of the current line)
    while True:
        newline = pending.rfind(b"\n")
        if newline >= 0:
            yield pos + newline + 1, None if oversized else pending[newline + 1:]
            pending, oversized = pending[:newline], False
            continue
        if pos == 0:
            yield 0, None if oversized else pending
            return
        if size - pos >= TAIL_WINDOW:
            return
        step = min(TAIL_CHUNK, pos)
        pos -= step
        pending = os.pread(fd, step, pos) + pending
        if b"\n" not in pending and len(pending) > MAX_RECORD:
            pending, oversized = b"", True  # its start is still ahead: keep looking for it
