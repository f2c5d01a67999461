"""Reading a JSON-lines file line by line in bounded memory, and judging each line.

Memory stays below one read chunk plus ``max_line`` bytes whatever the file holds: a line longer
than ``max_line`` is dropped as it streams by and only its offsets are kept (a repair copies it out
of the backup with ``pread``). The streaming is the target agent's ``scan_lines``, so a line splits
the same way here and on a target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator.agent.remote import vmrepair_agent as agent
from orchestrator.jsonl.report import ProblemKind

#: Lines longer than this are reported as oversized, never parsed.
MAX_LINE: int = agent.MAX_LINE


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    #: Offset of the first byte, and of the newline (or end of file) after the last.
    start: int
    end: int
    #: The bytes without the newline; None when longer than the cap (not kept).
    data: bytes | None
    has_newline: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a line is: ``kind`` None means a JSON object, which is in ``value``."""

    kind: ProblemKind | None
    reason: str = ""
    value: object = None


def scan(fd: int, size: int, *, max_line: int = MAX_LINE) -> Iterator[Line]:
    """The lines of the first ``size`` bytes of ``fd`` (a snapshot: later appends are not read)."""
    for number, (data, start, end, has_newline) in enumerate(agent.scan_lines(fd, size, max_line), 1):
        yield Line(number, start, end, data, has_newline)


def judge(data: bytes | None, *, max_line: int = MAX_LINE) -> Verdict:  # noqa: PLR0911 - one per kind
    """Whether a line is a JSON object, and if not the most telling reason why."""
    if data is None:
        return Verdict(ProblemKind.OVERSIZED, f"line longer than {max_line} bytes")
    nul = data.find(b"\x00")
    if nul >= 0:
        return Verdict(ProblemKind.NUL_BYTES, f"NUL byte at byte {nul} of the line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Verdict(ProblemKind.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start} of the line")
    if not text.strip():
        return Verdict(ProblemKind.BLANK, "blank line")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Verdict(ProblemKind.NOT_JSON, f"not JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:  # absurd nesting, integers too long to parse
        return Verdict(ProblemKind.NOT_JSON, f"not JSON: {type(exc).__name__}")
    if not isinstance(value, dict):
        return Verdict(ProblemKind.NOT_OBJECT, f"not a JSON object ({type(value).__name__})")
    return Verdict(None, value=value)
