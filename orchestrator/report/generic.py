"""Fallback rendering for stage files whose exact shape the report does not know (yet)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orchestrator.report.escape import code_block, inline, table

_SCALARS = (str, int, float, bool)
#: Columns of a table made from a list of records.
MAX_COLUMNS = 6
MAX_ROWS = 50
#: Evidence values up to this long (on one line) share a table instead of a block each.
SHORT_VALUE = 160


def is_scalar(value: object) -> bool:
    return value is None or isinstance(value, _SCALARS)


def scalar_bullets(data: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """``- **key:** value`` for each scalar entry not in ``skip``."""
    skipped = set(skip)
    return [f"- **{inline(key, 60)}:** {inline(_yes_no(value), 500)}"
            for key, value in data.items() if key not in skipped and is_scalar(value)]


def nested_block(data: dict[str, Any], skip: Iterable[str] = ()) -> str:
    """The non-scalar entries not in ``skip`` as one capped JSON block ('' when there are none)."""
    skipped = set(skip)
    # Empty lists and maps say nothing ("errors": [] is the normal case).
    rest = {k: v for k, v in data.items() if k not in skipped and not is_scalar(v) and v}
    if not rest:
        return ""
    return code_block(json.dumps(rest, indent=2, default=str, ensure_ascii=False), lang="json")


def evidence_block(evidence: dict[str, Any], limit: int) -> str:
    """Evidence entries: the short one-line values as one table, each longer or multi-line value as
    its own capped block (one block per ``Type: forking`` made a unit's evidence a hundred lines)."""
    keys = list(evidence)[:limit]
    short = [k for k in keys if _is_short(evidence[k])]
    out = [table(["Evidence", "Value"], [[inline(k, 80), inline(_yes_no(evidence[k]), SHORT_VALUE)]
                                         for k in short])] if short else []
    for key in keys:
        if key not in short:
            out += [f"**{inline(key, 80)}:**", "", code_block(evidence[key])]
    if len(evidence) > limit:
        out.append(f"_{len(evidence) - limit} more evidence entries are in the session files._\n")
    return "\n".join(out)


def _is_short(value: object) -> bool:
    return is_scalar(value) and "\n" not in str(value) and len(str(value)) <= SHORT_VALUE


def records_table(records: list[Any]) -> str:
    """A table of a list of flat records (columns: the first keys seen), or a JSON block otherwise."""
    rows = [r for r in records if isinstance(r, dict)]
    if not rows or len(rows) != len(records):
        return code_block(json.dumps(records, indent=2, default=str, ensure_ascii=False), lang="json")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    columns = columns[:MAX_COLUMNS]
    cells = [[inline(_yes_no(row.get(c)), 200) if is_scalar(row.get(c)) else inline(row.get(c), 200)
              for c in columns] for row in rows[:MAX_ROWS]]
    note = f"\n_{len(rows) - MAX_ROWS} more rows are in the session files._\n" if len(rows) > MAX_ROWS else ""
    return table([inline(c, 40) for c in columns], cells) + note


def _yes_no(value: object) -> object:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "" if value is None else value
