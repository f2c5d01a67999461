"""The human report of a session, rendered from the session's JSON files into ``report.md``.

Layout: the title and status line, then a short summary (what broke, what was done, the result, the
time to repair, the rollback command, the next step) — what a person paged at 3 a.m. needs — and then
every detail folded (``<details>``): the timeline, the issues found, and one fold per component
(triage, reproduction, diagnosis, attempts with their steps and validation, the change with its diff,
apply and backup, validation on the target). :mod:`orchestrator.report.html` renders the same parts.

Everything from a target or guest is escaped and capped by :mod:`orchestrator.report.escape`; a missing
file makes its section say "Not reached", an unreadable one says why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.errors import StateError
from orchestrator.fsutil import atomic_write
from orchestrator.report.fold import markdown_fold, markdown_section
from orchestrator.report.html import write_html_report
from orchestrator.report.parts import report_parts

REPORT_NAME = "report.md"

log = logging.getLogger(__name__)


def render_report(session_dir: Path, *, folded: bool = True) -> str:
    """The report of the session in ``session_dir`` as Markdown (never raises for its content).

    ``folded=False``: the details as plain sections instead of ``<details>`` blocks, for renderers that
    drop raw HTML (and with it the folds' titles)."""
    parts = report_parts(session_dir)
    fold = markdown_fold if folded else markdown_section
    return "\n".join([parts.head, parts.summary, "## Details", "", *map(fold, parts.folds)])


def write_report(session_dir: Path) -> Path:
    """Render the report and write it atomically to ``session_dir/report.md`` (mode 0600), and the HTML
    report next to it (``report.html``; best effort: the Markdown report is the record).

    Raises:
        StateError: report.md could not be written (disk full, permissions).
    """
    path = session_dir / REPORT_NAME
    atomic_write(path, render_report(session_dir).encode("utf-8"), mode=0o600)
    try:
        write_html_report(session_dir)
    except StateError as exc:
        # An optional copy: the run's outcome and report.md must not depend on it.
        log.warning("HTML report not written: %s", exc.message)
    return path
