"""Printing results: JSON for machines (``--json``), rich tables and messages for people.

Both consoles have rich's markup and emoji codes switched off: paths, target names, config keys, the
lock holder's argv and text from guests reach every print, and ``[/x]`` read as markup raises
``MarkupError`` (a traceback instead of the documented exit code). Doing it here, once, means no caller
can forget to escape; styling is given as a ``style=`` or a :class:`~rich.text.Text`, never inline.
For the same reason every message and cell goes through :func:`visible`: control characters (a
terminal escape in a guest's output or a lock holder's argv) are shown as ``\\xNN``, never sent raw.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

from orchestrator.transport.output import cap_text

#: Nothing a person reads needs more in one message or cell; a hostile text could hold megabytes.
MAX_SHOWN_CHARS = 64 * 1024
#: Width of a console that does not write to a terminal: wider than any line we print (a table row of
#: a few capped cells), so nothing is wrapped or cut. rich's tables size to their content, not to it.
UNWRAPPED_WIDTH = 1 << 20


class _PipeAwareConsole(Console):
    """A console that wraps at the terminal's width on a terminal, and never wraps off one.

    rich takes the width of *any* terminal among stdin/stdout/stderr, else 80: ``vmrepair sessions |
    grep X`` or a log file got its table rows and paths broken at 80 columns (or at the width of the
    terminal the command was started from), so a grep for a path missed it. The decision is made at
    every print, because tests and callers swap ``sys.stdout`` after this module is imported. A
    width set explicitly (``console.width = N``) still wins.
    """

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        # _width is rich's own record of an explicit width (constructor or setter); None: not set.
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(UNWRAPPED_WIDTH, dimensions.height)
        return dimensions

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


#: stderr console for messages and progress; stdout stays clean for data.
err_console = _PipeAwareConsole(stderr=True, highlight=False, markup=False, emoji=False)
out_console = _PipeAwareConsole(highlight=False, markup=False, emoji=False)


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table on stdout; every title, header and cell is plain text."""
    tbl = Table(title=visible(title), title_justify="left")
    for col in columns:
        tbl.add_column(visible(col))
    for row in rows:
        tbl.add_row(*[visible(str(cell)) for cell in row])
    out_console.print(tbl)


def visible(text: str) -> str:
    """``text`` with control characters but newline and tab shown as ``\\xNN``, capped."""
    return cap_text(text, MAX_SHOWN_CHARS)


def info(message: str) -> None:
    # soft_wrap: a long path is never cut in two by a line break (the terminal wraps, copying works).
    err_console.print(visible(message), soft_wrap=True)


def labelled(label: str, style: str, message: str, *, console: Console | None = None) -> None:
    """``label: message`` with only the label styled; the message is plain text."""
    (console or err_console).print(Text.assemble((f"{label}:", style), " ", visible(message)), soft_wrap=True)


def error(message: str) -> None:
    labelled("error", "bold red", message)


def warning(message: str) -> None:
    labelled("warning", "yellow", message)
