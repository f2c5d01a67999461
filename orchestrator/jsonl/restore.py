"""Bringing back a missing or empty JSON-lines file from the newest good copy beside it.

Candidates, newest first by modification time: logrotate's ``name.N`` and ``name.N.gz``, its dateext
``name-YYYYMMDD[HH][.gz]`` and vmrepair's own backups ``name.bak-<stamp>``. Each is copied (and
decompressed) into a temp file beside the log, fsynced and verified there; the first that verifies
and holds at least one line is put in place. A missing file is created by link(2), which fails rather
than overwrite a file a writer created meanwhile; an empty one is replaced by rename while it is
locked and still empty. The candidate itself stays where it is.

A copy stops at :data:`MAX_RESTORED_BYTES`, and a ``.gz`` once it grows past :data:`MAX_GZIP_RATIO`
times the archive's size (beyond :data:`RATIO_FLOOR`): a gzip bomb beside a log must not fill the
disk it sits on (issue 13). Such a candidate is passed over, with the cap in the reason.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import stat
import zlib
from pathlib import Path

from orchestrator.errors import AuditError
from orchestrator.jsonl.files import (
    CHUNK,
    NEW_FLAGS,
    READ_FLAGS,
    io_error,
    open_directory,
    open_regular,
    set_owner_mode,
    temp_name,
    unlink_quietly,
    write_all,
)
from orchestrator.jsonl.report import RepairAction, RepairReport, VerifyReport
from orchestrator.jsonl.scan import MAX_LINE
from orchestrator.jsonl.verifier import verify

#: A restored file larger than this is not a crash-damaged log: the candidate is passed over.
MAX_RESTORED_BYTES = 4 * 1024**3
#: Text logs compress about 5-50:1 (one line repeated: gzip's limit, about 1000:1); past this ratio
#: a ``.gz`` is taken for a bomb, checked only once it has produced RATIO_FLOOR bytes.
MAX_GZIP_RATIO = 200
RATIO_FLOOR = 16 * 1024 * 1024

#: What may follow the log's name in a rotation or backup beside it.
ROTATION_SUFFIX = re.compile(r"(?:\.\d+|-\d{8}(?:\d{2})?)(?:\.gz)?|\.bak-\d{8}T\d{6}Z(?:-\d+)?")


def rotation_candidates(path: Path) -> list[Path]:
    """Non-empty regular files beside ``path`` that are rotations or backups of it, newest first."""
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        suffix = entry.name[len(path.name):]
        if not entry.name.startswith(path.name) or not ROTATION_SUFFIX.fullmatch(suffix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            found.append((st.st_mtime_ns, entry.name))
    return [path.with_name(name) for _, name in sorted(found, reverse=True)]


def restore(path: Path, before: VerifyReport, *, audit: bool | None = None,
            max_line: int = MAX_LINE) -> RepairReport:
    """Restore missing or empty ``path`` (``before`` is its verification) from its newest good copy.

    Raises:
        AuditError: the file is missing and no candidate verifies; the copy cannot be written (disk
            full, permissions); or the file was created or written to meanwhile (then left alone).
    """
    report = RepairReport(path, audit=bool(audit))
    with open_directory(path.parent, for_path=path) as dfd:
        for candidate in rotation_candidates(path):
            tmp = temp_name()
            try:
                owner = _owner_of(path if before.exists else candidate)
                check = _stage(candidate, dfd, tmp, owner, audit=audit, max_line=max_line)
                if isinstance(check, str):
                    report.skipped.append((candidate, check))
                    unlink_quietly(tmp, dfd)
                    continue
                _install(path, dfd, tmp, existed=before.exists)
            except OSError as exc:
                unlink_quietly(tmp, dfd)
                raise io_error(exc, path, f"restore (from {candidate.name})") from exc
            except BaseException:
                unlink_quietly(tmp, dfd)
                raise
            report.action, report.restored_from, report.audit = RepairAction.RESTORED, candidate, check.audit
            report.lines_read = report.kept = check.lines
            report.notes.append(f"{path} was {'empty' if before.exists else 'missing'}: restored "
                                f"{check.lines} line(s) from {candidate}, which is left in place")
            return report
    tried = "; ".join(f"{p.name}: {why}" for p, why in report.skipped) or "none found"
    if not before.exists:
        raise AuditError(f"{path} is missing and no good backup or rotation was found beside it ({tried})",
                         remedy=f"check the path; looked for {path.name}.1, {path.name}.1.gz, "
                                f"{path.name}-YYYYMMDD and {path.name}.bak-*")
    report.notes.append(f"the file is empty, which is valid; nothing good to restore it from ({tried})")
    return report


def _owner_of(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, st.st_mode


def _stage(candidate: Path, dfd: int, tmp: str, owner: tuple[int, int, int], *, audit: bool | None,
           max_line: int) -> VerifyReport | str:
    """Copy (decompress) ``candidate`` into the new file ``tmp`` and verify that; its report, or why
    the candidate cannot be used.

    Raises:
        OSError: ``tmp`` cannot be written.
    """
    out = os.open(tmp, os.O_WRONLY | NEW_FLAGS, 0o600, dir_fd=dfd)
    try:
        try:
            fd, st = open_regular(candidate, flags=READ_FLAGS)
        except (FileNotFoundError, AuditError) as exc:
            return f"unreadable: {exc}"
        packed = candidate.suffix == ".gz"
        ratio_cap = max(RATIO_FLOOR, MAX_GZIP_RATIO * st.st_size) if packed else None
        copied = 0
        with os.fdopen(fd, "rb") as raw:
            read = gzip.GzipFile(fileobj=raw, mode="rb").read if packed else raw.read
            while True:
                try:
                    chunk = read(CHUNK)  # at most CHUNK bytes, also from gzip: memory stays bounded
                except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt archive
                    return f"unreadable: {exc}"
                if not chunk:
                    break
                copied += len(chunk)
                if copied > MAX_RESTORED_BYTES:
                    grows = "decompresses to more than" if packed else "larger than"
                    return f"{grows} {MAX_RESTORED_BYTES} bytes, the cap for a restored file"
                if ratio_cap is not None and copied > ratio_cap:
                    return (f"decompresses to more than {MAX_GZIP_RATIO} times its {st.st_size} bytes "
                            "(a gzip bomb?)")
                write_all(out, chunk)
        set_owner_mode(out, *owner)
        os.fsync(out)
    finally:
        os.close(out)
    check = verify(candidate.with_name(tmp), audit=audit, max_line=max_line)
    if check.ok and check.lines:
        return check
    return f"{check.status}: {check.problems[0].reason if check.problems else 'no lines'}"


def _install(path: Path, dfd: int, tmp: str, *, existed: bool) -> None:
    if not existed:
        try:
            os.link(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except FileExistsError as exc:
            raise AuditError(f"{path} appeared while it was being restored; it was not overwritten",
                             remedy=f"run `vmrepair log verify {path}`") from exc
        os.unlink(tmp, dir_fd=dfd)
    else:
        try:
            fd, st = open_regular(path.name, dir_fd=dfd, shown=path)
        except FileNotFoundError as exc:
            raise AuditError(f"{path} disappeared while it was being restored",
                             remedy="run `vmrepair log repair` again") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
            if os.fstat(fd).st_size or (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
                raise AuditError(f"{path} was written to while it was being restored; it was left as it is",
                                 remedy=f"run `vmrepair log verify {path}`")
            os.rename(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        finally:
            os.close(fd)
    os.fsync(dfd)
