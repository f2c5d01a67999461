"""The human report of a session, rendered from the session's JSON files into ``report.md``.

Layout: title and status with the summary and the next step first (what a person paged at 3 a.m.
needs), then the timeline, the issues found, one section per repaired component (triage, reproduction,
diagnosis, attempts with step output and validation per layer, the change with its diff, apply and
backup, validation on the target), and the next steps again at the end.

Everything from a target or guest is escaped and capped by :mod:`orchestrator.report.escape`; a missing
file makes its section say "Not reached", an unreadable one says why.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.fsutil import atomic_write
from orchestrator.report.component import component_section
from orchestrator.report.files import SessionFiles, as_dict, as_list
from orchestrator.report.overview import header, issues, next_steps, timeline, unreadable

REPORT_NAME = "report.md"


def render_report(session_dir: Path) -> str:
    """The report of the session in ``session_dir`` as Markdown.

    Never raises for the session's content: missing, unreadable or malformed files are reported in
    the sections they feed.
    """
    files = SessionFiles(session_dir)
    session = files.load("session")
    meta = as_dict(session.data)
    details = {str(as_dict(d).get("component", "")): as_dict(d) for d in as_list(meta.get("components"))}
    parts = [header(meta, files)]
    if not session.ok:
        parts.append("**session.json:** " + unreadable(session))
    parts += [f"**Next step:** {next_steps(meta)}\n", timeline(files), issues(meta, files)]
    components = files.components(list(details))
    if components:
        parts += [component_section(files, name, details.get(name, {})) for name in components]
    elif meta.get("status") != "healthy":
        parts.append("## Repair\n\n_Not reached._\n")
    parts.append(f"## Next steps\n\n{next_steps(meta)}\n")
    return "\n".join(parts)


def write_report(session_dir: Path) -> Path:
    """Render the report and write it atomically to ``session_dir/report.md`` (mode 0600).

    Raises:
        StateError: the report could not be written (disk full, permissions).
    """
    path = session_dir / REPORT_NAME
    atomic_write(path, render_report(session_dir).encode("utf-8"), mode=0o600)
    return path
