"""What :func:`~orchestrator.jsonl.verify` found and what :func:`~orchestrator.jsonl.repair` did.

Verification statuses and the exit codes of ``vmrepair log verify`` (the worst finding wins, in this
order): unreadable or missing file 23, broken hash chain 22, corrupt lines in the middle (bad lines
followed by good ones) 21, torn tail (bad lines at the end, or a last line without newline) 20, ok 0.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.audit.chain import ChainBreak

#: Problems listed in a report; the counts cover all of them.
MAX_LISTED = 1000


class ProblemKind(enum.StrEnum):
    NO_NEWLINE = "no_newline"       # a good last line without its newline: the next append would glue on
    OVERSIZED = "oversized"         # longer than the line cap; its bytes were never held in memory
    NUL_BYTES = "nul_bytes"         # typical of a crash: the filesystem extended the file with zeros
    INVALID_UTF8 = "invalid_utf8"
    BLANK = "blank"                 # whitespace only: fine in JSON lines, not in an audit log
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"       # valid JSON, but a list or a number: our logs hold objects
    NOT_RECORD = "not_record"       # a JSON object, but not a well-formed audit record
    FRAGMENT = "fragment"           # repair only: bytes between the objects salvaged from a line


class VerifyStatus(enum.StrEnum):
    OK = "ok"
    TORN_TAIL = "torn_tail"
    CORRUPT = "corrupt"
    BROKEN_CHAIN = "broken_chain"
    UNREADABLE = "unreadable"


EXIT_CODES = {VerifyStatus.OK: 0, VerifyStatus.TORN_TAIL: 20, VerifyStatus.CORRUPT: 21,
              VerifyStatus.BROKEN_CHAIN: 22, VerifyStatus.UNREADABLE: 23}


@dataclass
class Problem:
    kind: ProblemKind
    line: int
    #: Byte offset of the line's first byte in the file.
    offset: int
    reason: str
    #: After the last good line: part of a torn tail rather than corruption in the middle.
    in_tail: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "line": self.line, "offset": self.offset, "reason": self.reason,
                "in_tail": self.in_tail}


@dataclass
class VerifyReport:
    path: Path
    #: Checked as an audit log (record format and hash chain).
    audit: bool = False
    exists: bool = True
    #: Why the file could not be read (empty when it could), and what to do about it.
    error: str = ""
    remedy: str = ""
    size: int = 0
    lines: int = 0
    good_lines: int = 0
    blank_lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    middle_problems: int = 0
    tail_problems: int = 0
    #: Breaks no chain_break record acknowledges (see orchestrator.audit.chain).
    chain_breaks: list[ChainBreak] = field(default_factory=list)
    chain_break_count: int = 0
    acknowledged_breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def status(self) -> VerifyStatus:
        if self.error:
            return VerifyStatus.UNREADABLE
        if self.chain_break_count:
            return VerifyStatus.BROKEN_CHAIN
        if self.middle_problems:
            return VerifyStatus.CORRUPT
        return VerifyStatus.TORN_TAIL if self.tail_problems else VerifyStatus.OK

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def summary(self) -> str:
        kind = "audit log" if self.audit else "JSON-lines file"
        if self.error:
            return self.error if str(self.path) in self.error else f"{self.path}: {self.error}"
        parts = [f"{self.path}: {kind}, {self.lines} line(s), {self.good_lines} good"]
        if self.middle_problems:
            parts.append(f"{self.middle_problems} corrupt line(s) in the middle")
        if self.tail_problems:
            parts.append(f"torn tail ({self.tail_problems} line(s))")
        if self.chain_break_count:
            parts.append(f"hash chain broken in {self.chain_break_count} place(s)")
        if self.acknowledged_breaks:
            parts.append(f"{len(self.acknowledged_breaks)} acknowledged chain break(s)")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "status": str(self.status), "exit_code": self.exit_code,
            "format": "audit" if self.audit else "jsonl", "exists": self.exists, "error": self.error,
            "remedy": self.remedy,
            "size": self.size, "lines": self.lines, "good_lines": self.good_lines,
            "blank_lines": self.blank_lines, "middle_problems": self.middle_problems,
            "tail_problems": self.tail_problems, "problems": [p.as_dict() for p in self.problems],
            "chain_break_count": self.chain_break_count,
            "chain_breaks": [b.as_dict() for b in self.chain_breaks],
            "acknowledged_breaks": [b.as_dict() for b in self.acknowledged_breaks],
        }


class RepairAction(enum.StrEnum):
    NONE = "none"
    REPAIRED = "repaired"
    RESTORED = "restored"


@dataclass
class RepairReport:
    path: Path
    action: RepairAction = RepairAction.NONE
    audit: bool = False
    backup: Path | None = None
    restored_from: Path | None = None
    #: Restore candidates that were passed over, and why.
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    lines_read: int = 0
    kept: int = 0
    repaired: int = 0
    #: Lines quarantined whole.
    quarantined: int = 0
    #: Pieces of repaired lines that held no object (garbage between objects, NUL padding),
    #: quarantined as ``fragment`` entries; with whole lines, ``quarantined_bytes`` in all.
    fragments: int = 0
    quarantined_bytes: int = 0
    quarantine: Path | None = None
    #: Records `log repair` appended to an audit log (chain_break / log_repair).
    appended_records: int = 0
    acknowledged_breaks: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return {
            "path": str(self.path), "action": str(self.action), "format": "audit" if self.audit else "jsonl",
            "backup": text(self.backup), "restored_from": text(self.restored_from),
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "lines_read": self.lines_read, "kept": self.kept, "repaired": self.repaired,
            "quarantined": self.quarantined, "fragments": self.fragments,
            "quarantined_bytes": self.quarantined_bytes, "quarantine": text(self.quarantine),
            "appended_records": self.appended_records, "acknowledged_breaks": self.acknowledged_breaks,
            "notes": list(self.notes),
        }
