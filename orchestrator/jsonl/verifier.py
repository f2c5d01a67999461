"""Checking a JSON-lines file on this machine: every line a JSON object, and for an audit log every
line a well-formed record with an intact hash chain (see :mod:`orchestrator.audit.chain`).

A bad line is *in the middle* when a good line follows it, else part of a *torn tail* (what a crash or
a full disk leaves at the end of a file that is appended to). Blank lines are accepted in plain JSON
lines (as the target agent's ``jsonl_check`` does) but not in an audit log, where every line is a
record.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orchestrator.audit.chain import ChainChecker
from orchestrator.audit.record import AuditRecord, as_record
from orchestrator.errors import AuditError
from orchestrator.jsonl.files import open_regular
from orchestrator.jsonl.report import MAX_LISTED, Problem, ProblemKind, VerifyReport
from orchestrator.jsonl.scan import MAX_LINE, Line, judge, scan


def verify(path: Path, *, audit: bool | None = None, max_line: int = MAX_LINE) -> VerifyReport:
    """Check ``path`` line by line, streaming (memory bounded by ``max_line``, 16 MiB by default).

    ``audit``: True checks it as an audit log, False as plain JSON lines, None decides from its first
    JSON object (an audit log when that object has ``seq`` and ``prev``).

    Never raises for the state of the file: a missing or unreadable file is a report whose status is
    ``unreadable``. Reads a snapshot: lines appended while it runs are not checked.
    """
    report = VerifyReport(Path(path), audit=bool(audit))
    try:
        fd, _ = open_regular(path)
    except FileNotFoundError:
        report.exists, report.error = False, "no such file"
        report.remedy = f"check the path; `vmrepair log repair {path}` restores it from a rotation or backup"
        return report
    except AuditError as exc:
        report.error, report.remedy = exc.message, exc.remedy or ""
        return report
    try:
        # The audit log appends under LOCK_EX: a size read under LOCK_SH covers whole records only.
        fcntl.flock(fd, fcntl.LOCK_SH)
        report.size = os.fstat(fd).st_size
        fcntl.flock(fd, fcntl.LOCK_UN)
        _Verifier(report, audit, max_line).run(fd)
    except OSError as exc:  # an I/O error in the middle of the file
        report.error = f"read failed: {exc.strerror or exc}"
        report.remedy = "check dmesg for I/O errors, and copy the file elsewhere before changing anything"
    finally:
        os.close(fd)
    return report


def is_audit_shaped(value: object) -> bool:
    return isinstance(value, dict) and "seq" in value and "prev" in value


class _Verifier:
    def __init__(self, report: VerifyReport, audit: bool | None, max_line: int) -> None:
        self.report, self.audit, self.max_line = report, audit, max_line
        self.chain = ChainChecker()
        # Problems since the last good line: a torn tail unless a good line follows.
        self.pending: list[Problem] = []
        self.pending_count = 0
        self.unterminated = False

    def run(self, fd: int) -> None:
        report = self.report
        for line in scan(fd, report.size, max_line=self.max_line):
            report.lines = line.number
            self.feed(line)
        for problem in self.pending:
            problem.in_tail = True
        report.tail_problems = self.pending_count + self.unterminated
        report.chain_breaks = self.chain.unacknowledged
        report.chain_break_count = self.chain.unacknowledged_count
        report.acknowledged_breaks = self.chain.acknowledged

    def feed(self, line: Line) -> None:
        verdict = judge(line.data, max_line=self.max_line)
        kind, reason = verdict.kind, verdict.reason
        if kind is None and self.audit is None:
            self.audit = self.report.audit = is_audit_shaped(verdict.value)
        if kind is ProblemKind.BLANK and not self.audit:
            self.report.blank_lines += 1
            if line.has_newline:
                return
            kind, reason = ProblemKind.NO_NEWLINE, "blank last line without newline"
        elif kind is None and self.audit and line.data is not None:
            record = as_record(verdict.value, line.data)
            if isinstance(record, AuditRecord):
                self.chain.feed(record, line=line.number, offset=line.start)
            else:
                kind, reason = ProblemKind.NOT_RECORD, f"not an audit record: {record}"
        if kind is None:
            self.report.good_lines += 1
            self.report.middle_problems += self.pending_count
            self.pending, self.pending_count = [], 0
            if not line.has_newline:
                self.unterminated = True
                self._list(Problem(ProblemKind.NO_NEWLINE, line.number, line.start,
                                   "last line has no newline", in_tail=True))
            return
        if not line.has_newline and kind is not ProblemKind.NO_NEWLINE:
            reason = f"last line, no newline: {reason}"
        problem = Problem(kind, line.number, line.start, reason)
        if self._list(problem):
            self.pending.append(problem)
        self.pending_count += 1

    def _list(self, problem: Problem) -> bool:
        if len(self.report.problems) >= MAX_LISTED:
            return False
        self.report.problems.append(problem)
        return True
