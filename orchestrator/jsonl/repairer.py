"""Repairing a JSON-lines file on this machine without losing a byte.

1. Verify it; a file that passes is left alone, a missing or empty one is restored from its newest
   good backup or rotation instead (:mod:`.restore`).
2. Back it up to ``<name>.bak-<UTC stamp>`` beside it: same owner, mode and mtime, fsynced, then read
   back from disk (page cache dropped) and compared by sha256. The repair reads the backup, which
   cannot change under it.
3. Every line read becomes exactly one of: *kept* (a good line, or a blank one), *repaired* or
   *quarantined*: written to ``<name>.quarantine-<stamp>.jsonl`` as ``{"line", "offset", "length",
   "kind", "reason", "raw_base64"}``. A repaired line is split by the target agent's ``salvage`` into
   the JSON objects it holds (objects run together, NUL padding or garbage around them, a last object
   missing only its closing brace or quote), each written as a record of its own, and the bytes
   between them, each quarantined as a ``fragment`` entry. So every byte read is in the repaired
   file or in the quarantine, good lines in their order: ``{"id":1}X{"id":2}`` becomes two records
   and a one-byte fragment (issue 13). kept + repaired + quarantined == lines read, and the same for
   bytes, are checked before anything is replaced.
   A file in which nothing is left to keep (every line quarantined) is refused and left untouched:
   replacing it by an empty file would destroy the evidence of what went wrong.
4. The result is written to a temp file beside the log (owner and mode of the original), fsynced and
   renamed over the log; then the directory is fsynced. The log is flocked meanwhile, so the audit
   writer waits and then reopens the new file. A writer that does not lock is caught by comparing
   size and mtime before the rename: the repair is abandoned rather than lose what it wrote.

**Audit logs.** Bytes covered by the hash chain are never changed, so nothing is salvaged there: a
line that is not a well-formed record is quarantined whole. Breaks of the chain (including those the
quarantine exposes) are not hidden by re-hashing, which would make tampering invisible: the repair
appends ``chain_break`` records (component ``audit``, at most 100 breaks each) chained onto the last
kept record, whose ``details.breaks`` name each break by seq and line hash, with its line, offset and
the expected values. The verifier accepts exactly the breaks named that way (see
:mod:`orchestrator.audit.chain`), so ``log verify`` exits 0 after ``log repair`` while any later edit
still fails it. Without breaks, one ``log_repair`` record says what was done.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from orchestrator.agent.remote.vmrepair_agent import salvage
from orchestrator.audit.chain import MAX_PENDING, ChainChecker
from orchestrator.audit.log import utc_now
from orchestrator.audit.record import (
    AUDIT_COMPONENT,
    CHAIN_BREAK_EVENT,
    AuditRecord,
    as_record,
    encode_record,
    parse_record,
)
from orchestrator.errors import AuditError
from orchestrator.jsonl.files import (
    CHUNK,
    NEW_FLAGS,
    copy_range,
    create_unique,
    io_error,
    open_directory,
    open_regular,
    set_owner_mode,
    sha256_range,
    temp_name,
    unlink_quietly,
)
from orchestrator.jsonl.report import ProblemKind, RepairAction, RepairReport
from orchestrator.jsonl.restore import restore
from orchestrator.jsonl.scan import MAX_LINE, Line, judge, scan
from orchestrator.jsonl.verifier import verify
from orchestrator.timestamps import format_timestamp

ACKS_PER_RECORD = 100
#: Whole 3-byte groups, so base64 pieces of one oversized line concatenate into valid base64.
B64_CHUNK = 3 * 256 * 1024
REPAIR_EVENT = "log_repair"


def repair(path: Path, *, audit: bool | None = None, max_line: int = MAX_LINE,
           clock: Callable[[], dt.datetime] = utc_now) -> RepairReport:
    """Repair ``path`` in place (see the module docstring); ``audit`` as for :func:`verify`.

    Raises:
        AuditError: the file or a directory above it is a symlink; it is not a regular file, or
            unreadable; it holds nothing good to keep; it is missing and no
            good backup or rotation exists; its chain is broken in more than 10,000 places; a backup,
            quarantine file or repaired copy cannot be written (disk full, permissions); or it changed
            while being repaired. In every case the file itself is left as it was.
    """
    path = Path(path)
    with open_directory(path.parent, for_path=path):  # refuses a symlinked parent before reading through it
        pass
    before = verify(path, audit=audit, max_line=max_line)
    if before.exists and before.error:
        raise AuditError(f"cannot repair {path}: {before.error}",
                         remedy=before.remedy or "name a regular file you can read and write (run as root)")
    if not before.exists or before.size == 0:
        return restore(path, before, audit=audit, max_line=max_line)
    if before.ok:
        return RepairReport(path, audit=before.audit, lines_read=before.lines, kept=before.lines,
                            notes=["the file verifies: nothing to repair"])
    if before.chain_break_count > MAX_PENDING:
        raise _too_broken(path, before.chain_break_count)
    return _Repair(path, before.audit, max_line, clock().astimezone(dt.UTC)).run()


def _too_broken(path: Path, count: int) -> AuditError:
    return AuditError(f"the hash chain of {path} is broken in {count} places, more than the {MAX_PENDING} "
                      "a repair acknowledges", remedy="this is not crash damage (a file stitched together or "
                      "rewritten?): inspect it by hand; nothing was changed")


class _Repair:
    def __init__(self, path: Path, audit: bool, max_line: int, now: dt.datetime) -> None:
        self.path, self.audit, self.max_line, self.now = path, audit, max_line, now
        self.stamp = now.strftime("%Y%m%dT%H%M%SZ")
        self.report = RepairReport(path, RepairAction.REPAIRED, audit)
        self.chain = ChainChecker()
        self.created: list[str] = []  # removed again unless the log was replaced
        self.quarantine: BinaryIO | None = None
        self.out_lines = self.out_bytes = 0
        # Objects written (kept or salvaged), and bytes of line content read and accounted for.
        self.objects = self.bytes_read = self.bytes_accounted = 0
        self.replaced = False
        # What is being done to which file, for the message of an OSError.
        self.doing, self.target = "repair", path
        self.dfd = self.bfd = -1

    def run(self) -> RepairReport:
        with open_directory(self.path.parent, for_path=self.path) as self.dfd:
            try:
                fd, st = open_regular(self.path.name, dir_fd=self.dfd, shown=self.path)
            except FileNotFoundError as exc:
                raise AuditError(f"{self.path} disappeared before it could be repaired",
                                 remedy="run `vmrepair log repair` again") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # the audit writer waits, then reopens the new file
                self._replace(fd, st)
            except OSError as exc:
                error = io_error(exc, self.target, self.doing)
                state = "was replaced (not yet durably)" if self.replaced else "was not changed"
                raise AuditError(f"{error.message}; {self.path} {state}", remedy=error.remedy) from exc
            finally:
                if self.quarantine is not None:
                    with contextlib.suppress(OSError):  # flushed and fsynced already when it matters
                        self.quarantine.close()
                os.close(fd)
        return self.report

    def _replace(self, fd: int, st: os.stat_result) -> None:
        try:
            self.bfd = self._backup(fd, st)
            try:
                tmp = self._rewrite(st)
            finally:
                os.close(self.bfd)
            self._check_unchanged(fd, st)
            self.doing, self.target = "replace", self.path
            os.fsync(self.dfd)  # backup and quarantine are on disk before the log is replaced
            os.rename(tmp, self.path.name, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
        except BaseException:
            for name in self.created:
                unlink_quietly(name, self.dfd)
            raise
        self.replaced = True
        os.fsync(self.dfd)

    def _backup(self, fd: int, st: os.stat_result) -> int:
        self.doing, self.target = "write a backup of", self.path
        name, bfd = create_unique(self.dfd, f"{self.path.name}.bak-{self.stamp}")
        self.created.append(name)
        self.report.backup = self.target = self.path.with_name(name)
        self.doing = "write the backup"
        try:
            digest, copied = copy_range(fd, bfd, st.st_size)
            if copied != st.st_size:
                raise _changed(self.path)  # noqa: TRY301 - bfd must be closed as well
            set_owner_mode(bfd, st.st_uid, st.st_gid, st.st_mode)
            os.utime(bfd, ns=(st.st_atime_ns, st.st_mtime_ns))  # restore picks the newest by mtime
            os.fsync(bfd)
            # Read back from the disk, not from the page cache that the copy just filled.
            os.posix_fadvise(bfd, 0, 0, os.POSIX_FADV_DONTNEED)
            if sha256_range(bfd, copied) != digest:
                raise AuditError(  # noqa: TRY301 - bfd must be closed as well
                    f"the backup {self.target} does not read back as written; {self.path} was not changed",
                    remedy="the disk may be failing: check dmesg and SMART")
        except BaseException:
            os.close(bfd)
            raise
        return bfd

    def _rewrite(self, st: os.stat_result) -> str:
        tmp = temp_name()
        self.doing, self.target = "write the repaired copy of", self.path
        out_fd = os.open(tmp, os.O_WRONLY | NEW_FLAGS, 0o600, dir_fd=self.dfd)
        self.created.append(tmp)
        with os.fdopen(out_fd, "wb", buffering=CHUNK) as out:
            for line in scan(self.bfd, st.st_size, max_line=self.max_line):
                self.report.lines_read = line.number
                self.bytes_read += line.end - line.start
                self._line(line, out, st)
            if self.report.quarantined and not self.objects:
                raise _nothing_to_keep(self.path, self.report.lines_read, self.audit)
            if self.audit:
                self._append_records(out)
            out.flush()
            set_owner_mode(out.fileno(), st.st_uid, st.st_gid, st.st_mode)
            os.fsync(out.fileno())
        if self.quarantine is not None:
            self.doing, self.target = "write", self.report.quarantine or self.path
            self.quarantine.flush()
            os.fsync(self.quarantine.fileno())
        r = self.report
        if r.kept + r.repaired + r.quarantined != r.lines_read:  # nothing may vanish unaccounted
            raise AuditError(f"internal error: {r.lines_read} lines read but {r.kept} kept, {r.repaired} "
                             f"repaired, {r.quarantined} quarantined; {self.path} was not changed",
                             remedy="report this bug with the backup file")
        if self.bytes_accounted != self.bytes_read:
            raise AuditError(f"internal error: {self.bytes_read} bytes read but {self.bytes_accounted} "
                             f"written or quarantined; {self.path} was not changed",
                             remedy="report this bug with the backup file")
        return tmp

    def _line(self, line: Line, out: BinaryIO, st: os.stat_result) -> None:
        verdict = judge(line.data, max_line=self.max_line)
        kind, reason = verdict.kind, verdict.reason
        if kind is None and self.audit and line.data is not None:
            record = as_record(verdict.value, line.data)
            if isinstance(record, AuditRecord):
                self.chain.feed(record, line=line.number, offset=line.start)
            else:
                kind, reason = ProblemKind.NOT_RECORD, f"not an audit record: {record}"
        good = kind is None or (kind is ProblemKind.BLANK and not self.audit)
        if good and line.data is not None:
            self._emit(out, line.data)
            self.report.kept += 1
            self.objects += kind is None
            self.bytes_accounted += len(line.data)
            return
        # Audit lines are never salvaged: the chain covers their exact bytes.
        segments = salvage(line.data) if line.data is not None and not self.audit else []
        if segments and line.data is not None:
            for start, end, salvaged in segments:
                if salvaged is None:
                    self._quarantine(line, ProblemKind.FRAGMENT, _fragment_reason(line.data[start:end]), st,
                                     span=(start, end))
                    self.report.fragments += 1
                else:
                    self._emit(out, salvaged)
                    self.objects += 1
                    self.bytes_accounted += end - start
            self.report.repaired += 1
            return
        self._quarantine(line, kind or ProblemKind.NOT_JSON, reason, st)
        self.report.quarantined += 1

    def _emit(self, out: BinaryIO, data: bytes) -> None:
        out.write(data + b"\n")
        self.out_lines += 1
        self.out_bytes += len(data) + 1

    def _quarantine(self, line: Line, kind: ProblemKind, reason: str, st: os.stat_result, *,
                    span: tuple[int, int] | None = None) -> None:
        """Write ``line`` (or the bytes ``span`` of it) to the quarantine file, creating it first."""
        if self.quarantine is None:
            name, qfd = create_unique(self.dfd, f"{self.path.name}.quarantine-{self.stamp}", ".jsonl")
            self.created.append(name)
            self.report.quarantine = self.path.with_name(name)
            set_owner_mode(qfd, st.st_uid, st.st_gid, 0o600)  # raw log data: for its owner only
            self.quarantine = os.fdopen(qfd, "wb", buffering=CHUNK)
        self.doing, self.target = "write", self.report.quarantine or self.path
        start, end = span or (0, line.end - line.start)
        head = json.dumps({"line": line.number, "offset": line.start + start, "length": end - start,
                           "kind": str(kind), "reason": reason})
        q = self.quarantine
        q.write(head[:-1].encode() + b', "raw_base64": "')
        if line.data is not None:
            q.write(base64.b64encode(line.data[start:end]))
        else:  # too long to have been held in memory: stream it from the backup
            for offset in range(line.start, line.end, B64_CHUNK):
                q.write(base64.b64encode(os.pread(self.bfd, min(B64_CHUNK, line.end - offset), offset)))
        q.write(b'"}\n')
        self.report.quarantined_bytes += end - start
        self.bytes_accounted += end - start
        self.doing, self.target = "write the repaired copy of", self.path

    def _append_records(self, out: BinaryIO) -> None:
        if self.chain.overflow:
            raise _too_broken(self.path, self.chain.unacknowledged_count)
        breaks = self.chain.unacknowledged
        batches = [breaks[i:i + ACKS_PER_RECORD] for i in range(0, len(breaks), ACKS_PER_RECORD)] or [[]]
        r = self.report
        for number, batch in enumerate(batches, 1):
            details: dict[str, object] = {
                "file": str(self.path), "backup": str(r.backup), "lines_read": r.lines_read, "kept": r.kept,
                "quarantined": r.quarantined, "quarantine": str(r.quarantine) if r.quarantine else None}
            if batch:
                details |= {"part": f"{number} of {len(batches)}", "breaks": [b.as_dict() for b in batch]}
            line = encode_record(seq=self.chain.last_seq + 1, prev=self.chain.last_hash,
                                 timestamp=format_timestamp(self.now),
                                 event=CHAIN_BREAK_EVENT if batch else REPAIR_EVENT,
                                 component=AUDIT_COMPONENT, status="repaired", details=details)
            record = parse_record(line)
            if record is not None:
                self.chain.feed(record, line=self.out_lines + 1, offset=self.out_bytes)
            self._emit(out, line)
            r.appended_records += 1
        r.acknowledged_breaks = len(breaks)
        if self.chain.unacknowledged_count:
            raise AuditError(f"internal error: {self.chain.unacknowledged_count} chain breaks of {self.path} "
                             "would stay unacknowledged; it was not changed", remedy="report this bug")

    def _check_unchanged(self, fd: int, st: os.stat_result) -> None:
        now = os.fstat(fd)
        try:
            current = os.stat(self.path.name, dir_fd=self.dfd, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise _changed(self.path) from exc
        if ((now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
                or (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino)):
            raise _changed(self.path)


def _fragment_reason(data: bytes) -> str:
    shown = data[:40].decode("utf-8", "backslashreplace")
    more = f"... ({len(data)} bytes)" if len(data) > 40 else ""
    return f"not part of the JSON objects salvaged from this line: {shown!r}{more}"


def _nothing_to_keep(path: Path, lines: int, audit: bool) -> AuditError:
    what = "a well-formed audit record" if audit else "a JSON object"
    return AuditError(f"nothing good to keep in {path}: none of its {lines} line(s) holds {what}, so a "
                      f"repair would empty it; it was left untouched",
                      remedy=f"the evidence is {path} itself (`vmrepair log verify {path}` lists why each "
                             "line is bad); if it is not a JSON-lines file, name the right one")


def _changed(path: Path) -> AuditError:
    return AuditError(f"{path} changed while it was being repaired (is a program still writing it?); "
                      "it was left as it is", remedy="stop or pause the writer, then run `vmrepair log "
                      "repair` again")
