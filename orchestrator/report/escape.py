"""Putting untrusted text into Markdown without letting it change the document.

Everything that came from a target or a guest (unit names, paths, probe summaries, command output,
diffs) goes through one of these:

* :func:`inline` for prose and table cells: control characters made visible (:func:`cap_text`), all
  whitespace folded to single spaces (a newline could start a heading or close a table), capped, and
  the characters Markdown gives a meaning inline backslash-escaped;
* :func:`code` for short identifiers shown as code spans (delimited by a backtick run longer than any
  inside);
* :func:`code_block` for output: a fenced block whose fence is longer than any backtick run inside, so
  the text cannot close it, with the middle of long text cut (head and tail kept: the start says what
  ran, the end usually says why it failed) and the cut announced;
* :func:`html_text` for HTML (the ``<summary>`` of a fold, every text node and attribute of the HTML
  report): cleaned and capped like :func:`inline`, then ``& < > " '`` as entities.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence

from orchestrator.session.store import cap_text
from orchestrator.timestamps import shown_timestamp

#: Characters of guest text kept per code block (head + tail).
BLOCK_LIMIT = 4096
#: Characters kept per inline value.
INLINE_LIMIT = 300
#: Inline characters with a meaning in (GitHub-flavoured) Markdown: emphasis, code, links, raw HTML,
#: entities, strikethrough, table cells, escapes.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
_BACKTICKS = re.compile(r"`+")
_EMPTY = "—"


def text_of(value: object) -> str:
    """A JSON value as text: strings as-is, None as nothing, everything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _clean(text: str) -> str:
    # Only cap_text's cleaning is wanted here, not its cap: an escape is at most 8 characters long.
    return cap_text(text, 8 * len(text) + 16)


def _fold(value: object, limit: int) -> str:
    return " ".join(cap_text(text_of(value), limit).split())


def inline(value: object, limit: int = INLINE_LIMIT) -> str:
    """``value`` as plain Markdown text on one line (``—`` when empty)."""
    folded = _fold(value, limit)
    return _INLINE_SPECIAL.sub(r"\\\1", folded) if folded else _EMPTY


def html_text(value: object, limit: int = INLINE_LIMIT, *, fold: bool = True) -> str:
    """``value`` as HTML text, safe in an element and in a quoted attribute. ``fold``: whitespace folded
    to single spaces (else newlines kept, for ``<pre>``)."""
    text = _fold(value, limit) if fold else cap_text(text_of(value), limit)
    return html.escape(text, quote=True)


def code(value: object, *, limit: int = INLINE_LIMIT, in_table: bool = False) -> str:
    """``value`` as an inline code span (``—`` when empty). In a table, ``|`` is escaped as GFM asks."""
    folded = _fold(value, limit)
    if not folded:
        return _EMPTY
    longest = max((len(run) for run in _BACKTICKS.findall(folded)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if folded.startswith("`") or folded.endswith("`") else ""
    if in_table:
        folded = folded.replace("|", "\\|")
    return f"{ticks}{pad}{folded}{pad}{ticks}"


def excerpt(value: object, limit: int = BLOCK_LIMIT) -> tuple[str, int]:
    """(cleaned text, characters cut): the whole text when it fits, else its head and tail."""
    text = text_of(value)
    if len(text) <= limit:
        return _clean(text), 0
    head = limit // 4
    tail = limit - head
    cut = len(text) - limit
    marker = f"\n[... {cut:,} of {len(text):,} characters cut here ...]\n"
    return _clean(text[:head]) + marker + _clean(text[-tail:]), cut


def code_block(value: object, *, lang: str = "text", limit: int = BLOCK_LIMIT) -> str:
    """``value`` as a fenced code block that its content cannot close, capped at ``limit`` characters."""
    body, cut = excerpt(value, limit)
    body = body.rstrip("\n")
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    note = f"\n_{cut:,} characters cut from the middle of this output._\n" if cut else ""
    return f"{fence}{lang}\n{body}\n{fence}\n{note}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GFM table; ``headers`` are ours, cells must already be escaped (:func:`inline`, :func:`code`)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def duration(value: object) -> str:
    """Seconds as ``0.4 s``, ``12 s``, ``2 min 05 s``, ``1 h 02 min``; ``—`` when not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _EMPTY
    seconds = float(value)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def timestamp(value: object) -> str:
    """A stored timestamp in the one format (``2026-01-02T03:04:05Z``); anything else escaped as-is."""
    if isinstance(value, str):
        shown = shown_timestamp(value)
        return inline(value, 64) if shown is None else shown
    return inline(value, 64) if value is not None else _EMPTY
