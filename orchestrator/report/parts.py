"""The parts both reports are made of (:mod:`.markdown` and :mod:`.html`): the head, the summary and
the folds, read once from the session directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.report.component import component_fold
from orchestrator.report.files import SessionFiles, as_dict, as_list
from orchestrator.report.fold import Fold
from orchestrator.report.overview import header, issues, timeline, times, unreadable
from orchestrator.report.summary import summary_section


@dataclass(frozen=True)
class ReportParts:
    """The report before it is written out: Markdown throughout (escaped), folds titled in plain text."""

    session: dict[str, Any]
    files: SessionFiles
    #: Title and status line.
    head: str
    #: The summary and the next step.
    summary: str
    folds: tuple[Fold, ...]


def report_parts(session_dir: Path) -> ReportParts:
    """Never raises for the session's content: missing, unreadable or malformed files are reported in
    the parts they feed."""
    files = SessionFiles(session_dir)
    session = files.load("session")
    meta = as_dict(session.data)
    details: dict[str, dict[str, Any]] = {}
    for detail in map(as_dict, as_list(meta.get("components"))):
        # A component can have several outcomes (its repair, then a report-only issue of it): the
        # first is the repair the stage files belong to; the summary lists every one.
        details.setdefault(str(detail.get("component", "")), detail)
    head = header(meta, files)
    if not session.ok:
        head += "\n**session.json:** " + unreadable(session)
    stages = as_list(files.load("timeline").data)
    found = as_list(meta.get("issues"))
    folds = [Fold(f"Timeline: {len(stages)} stages", times(meta) + "\n" + timeline(files)),
             Fold(f"Issues found: {len(found)}", issues(meta, files))]
    components = files.components(list(details))
    folds += [component_fold(files, name, details.get(name, {})) for name in components]
    if not components and meta.get("status") != "healthy":
        folds.append(Fold("Repair: not reached", "_Not reached._\n"))
    return ReportParts(meta, files, head, summary_section(meta, files), tuple(folds))
