"""Printing results: JSON for machines (``--json``), rich tables and messages for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

#: stderr console for messages and progress; stdout stays clean for data.
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    tbl = Table(title=title, title_justify="left")
    for col in columns:
        tbl.add_column(col)
    for row in rows:
        tbl.add_row(*[str(cell) for cell in row])
    out_console.print(tbl)


def info(message: str) -> None:
    err_console.print(message, markup=False)
