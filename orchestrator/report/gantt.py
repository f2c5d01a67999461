"""The run's timeline as an inline SVG Gantt chart: one bar per stage of ``timeline.json``, placed at its
start and as long as its duration, coloured by status.

A stage's start is its ``started_at``; one without a readable start follows the previous stage (the
driver runs them one after another). Every label is escaped (:func:`html_text`): stage names and
statuses come from the session file. Pure SVG, no script and no external font or stylesheet.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.report.escape import duration, html_text
from orchestrator.report.files import as_dict
from orchestrator.timestamps import parse_timestamp

#: Stages drawn; a runaway timeline is cut (the table in the report has them all).
MAX_BARS = 80
WIDTH = 960
LABEL_WIDTH = 150
#: Room right of the plot for the last bar's duration label.
RIGHT_MARGIN = 70
ROW = 22
AXIS = 26
TICKS = 6
_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "error": "#c62828", "skipped": "#9e9e9e",
            "running": "#ef6c00"}
_OTHER = "#546e7a"


@dataclass(frozen=True)
class Bar:
    name: str
    status: str
    #: Seconds from the start of the first stage.
    offset: float
    seconds: float


def bars(stages: Sequence[Any]) -> list[Bar]:
    """The stages as bars (at most :data:`MAX_BARS`), placed on one time axis."""
    entries = [as_dict(e) for e in stages][:MAX_BARS]
    starts = [_moment(e.get("started_at")) for e in entries]
    known = [s for s in starts if s is not None]
    origin = min(known) if known else None
    out: list[Bar] = []
    cursor = 0.0
    for entry, start in zip(entries, starts, strict=True):
        seconds = _seconds(entry.get("duration_s"))
        offset = (start - origin).total_seconds() if start is not None and origin is not None else cursor
        offset = max(offset, 0.0)
        out.append(Bar(str(entry.get("name") or "?"), str(entry.get("status") or "?"), offset, seconds))
        cursor = offset + seconds
    return out


def timeline_svg(stages: Sequence[Any]) -> str:
    """The chart as an ``<svg>`` element ('' when there is no stage)."""
    drawn = bars(stages)
    if not drawn:
        return ""
    span = max(b.offset + b.seconds for b in drawn) or 1.0
    plot = WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    height = AXIS + ROW * len(drawn) + 8
    scale = plot / span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" role="img" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
             f"<title>Timeline of the run: {len(drawn)} stages over {html_text(duration(span))}</title>"]
    for n in range(TICKS + 1):
        x = LABEL_WIDTH + plot * n / TICKS
        parts += [f'<line x1="{x:.1f}" y1="{AXIS - 6}" x2="{x:.1f}" y2="{height - 4}" stroke="#e0e0e0"/>',
                  f'<text x="{x:.1f}" y="{AXIS - 10}" text-anchor="middle" fill="#616161">'
                  f"{html_text(duration(span * n / TICKS))}</text>"]
    for row, bar in enumerate(drawn):
        y = AXIS + ROW * row
        x = LABEL_WIDTH + bar.offset * scale
        # A stage of a few milliseconds still gets a visible sliver.
        width = max(bar.seconds * scale, 2.0)
        colour = _COLOURS.get(bar.status, _OTHER)
        label = f"{bar.name}: {bar.status}, {duration(bar.seconds)}"
        parts += [f'<g class="stage stage-{html_text(_css_word(bar.status), 20)}">',
                  f"<title>{html_text(label, 200)}</title>",
                  f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
                  f"{html_text(bar.name, 40)}</text>",
                  f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" rx="2" '
                  f'fill="{colour}"/>',
                  f'<text x="{x + width + 4:.1f}" y="{y + 15}" fill="#424242">'
                  f"{html_text(duration(bar.seconds))}</text>", "</g>"]
    parts.append("</svg>")
    return "\n".join(parts)


def _moment(value: object) -> dt.datetime | None:
    moment = parse_timestamp(value) if isinstance(value, str) else None
    # Naive and aware moments cannot be compared: a timeline that mixes them is drawn in sequence.
    return moment if moment is not None and moment.tzinfo is not None else None


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return max(float(value), 0.0)


def _css_word(status: str) -> str:
    return "".join(c for c in status if c.isalnum() or c == "_")[:20] or "unknown"
