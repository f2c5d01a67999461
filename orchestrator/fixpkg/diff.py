"""Unified diffs of text files for the report, capped: configs can be long and the report is for people."""

from __future__ import annotations

import difflib

#: Files larger than this are not diffed (a diff of them would not be read anyway).
MAX_DIFF_INPUT = 1024 * 1024
MAX_DIFF_LINES = 400
MAX_DIFF_CHARS = 32 * 1024


def _as_text(data: bytes) -> list[str] | None:
    if len(data) > MAX_DIFF_INPUT or b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def text_diff(path: str, old: bytes | None, new: bytes | None) -> str | None:
    """A unified diff of ``old`` -> ``new`` (``None`` = absent), or ``None`` when either is not text.

    Output beyond :data:`MAX_DIFF_LINES` lines or :data:`MAX_DIFF_CHARS` characters is cut with a note.
    """
    old_lines = [] if old is None else _as_text(old)
    new_lines = [] if new is None else _as_text(new)
    if old_lines is None or new_lines is None:
        return None
    lines: list[str] = []
    size = 0
    diff = difflib.unified_diff(
        old_lines, new_lines,
        fromfile="/dev/null" if old is None else f"a{path}",
        tofile="/dev/null" if new is None else f"b{path}",
    )
    for count, line in enumerate(diff):
        text = line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        if count >= MAX_DIFF_LINES or size + len(text) > MAX_DIFF_CHARS:
            lines.append("[... diff cut]\n")
            break
        lines.append(text)
        size += len(text)
    return "".join(lines)
