"""`vmrepair sessions` (list past runs) and `vmrepair report ID|latest [--html]` (show one run's report).

On a terminal the report is rendered (rich's Markdown, the folds as plain sections: rich drops raw
HTML); piped or redirected, the raw Markdown of report.md is printed, for tools and mail. ``--html``
writes the self-contained report.html into the session directory and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from pathlib import Path
from typing import Any

from rich.markdown import Markdown
from rich.table import Table

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, out_console
from orchestrator.errors import StateError, VmRepairError
from orchestrator.report.html import HTML_REPORT_NAME, render_html, write_html_report
from orchestrator.report.markdown import REPORT_NAME, render_report, write_report
from orchestrator.session.jsonfile import UNREADABLE, read_regular_file, scan_sessions
from orchestrator.session.store import cap_text, list_sessions, load_session_meta
from orchestrator.timestamps import shown_timestamp

#: What new_session() produces: UTC stamp, dash, 6 hex digits. Checked before any path is built, so
#: an id can never name anything outside the sessions directory.
SESSION_ID_RE = re.compile(r"[0-9TZ]+-[0-9a-f]{6}")
#: How many ids an "unknown session" message suggests.
SUGGESTED_IDS = 5
#: A saved report.md larger than this is rendered again rather than printed.
MAX_REPORT_BYTES = 32 * 1024 * 1024
#: Summary characters shown per row of the table.
SUMMARY_WIDTH = 80
#: The id that names the newest session.
LATEST = "latest"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = sub.add_parser("sessions", help="list past repair sessions, newest first")
    sessions.set_defaults(handler=cmd_sessions)
    report = sub.add_parser("report", help="show the report of a session (rendered if missing)")
    report.add_argument("id", help=f"session id, as listed by `vmrepair sessions`, or `{LATEST}` "
                                   "(the newest)")
    report.add_argument("--html", action="store_true",
                        help="write the self-contained HTML report (report.html in the session directory) "
                             "and print it")
    report.set_defaults(handler=cmd_report)


def cmd_sessions(app: App, args: argparse.Namespace) -> int:
    """Unreadable sessions are listed (status ``unreadable``) and named in a warning.

    Raises:
        StateError: the sessions directory cannot be listed.
    """
    try:
        found = scan_sessions(app.settings.sessions_dir)
    except OSError as exc:
        raise StateError(f"cannot list {app.settings.sessions_dir}: {exc.strerror or exc}",
                         remedy="run as root (the state directory is private)") from exc
    bad = [meta for meta in found if meta.get("status") == UNREADABLE]
    if bad:
        info("warning: " + f"{len(bad)} session(s) could not be read; "
             + "; ".join(f"{_cell(m.get('id'), 40)}: {_cell(m.get('summary'), 200)}" for m in bad))
    if args.json:
        emit_json({"sessions": [_row_dict(meta) for meta in found]})
        return 0
    if not found:
        info(f"no sessions in {app.settings.sessions_dir}")
        return 0
    # Not output.table(): the id is what people copy into `vmrepair report ID`, so it (and the time)
    # must never be wrapped or cut, whatever the terminal width; the summary folds instead.
    tbl = Table(title="vmrepair sessions", title_justify="left")
    tbl.add_column("id", no_wrap=True)
    tbl.add_column("target", overflow="fold")
    tbl.add_column("status", no_wrap=True)
    tbl.add_column("started (UTC)", no_wrap=True)
    tbl.add_column("summary", overflow="fold", ratio=1)
    for meta in found:
        tbl.add_row(_cell(meta.get("id"), 40), _cell(meta.get("target"), 60), _cell(meta.get("status"), 20),
                    _when(meta.get("started_at")), _cell(meta.get("summary"), SUMMARY_WIDTH))
    out_console.print(tbl)
    return 0


def cmd_report(app: App, args: argparse.Namespace) -> int:
    """Print a session's report.md (rendering it first when missing or older than the evidence), or
    with ``--html`` write and print report.html.

    Raises:
        VmRepairError: no session has that id, or there is none for `latest` (exit 1; the message
            names the newest ids).
        StateError: session.json of that session is unreadable; the sessions directory cannot be listed.
    """
    session_id = _newest(app.settings.sessions_dir) if args.id == LATEST else str(args.id)
    if not SESSION_ID_RE.fullmatch(session_id):
        info(f"error: {session_id!r} is not a session id (like 20260102T030405Z-1a2b3c) or {LATEST!r}; "
             "`vmrepair sessions` lists them")
        return 2
    directory = app.settings.sessions_dir / session_id
    if not directory.is_dir():
        raise _unknown(app.settings.sessions_dir, session_id)
    meta = load_session_meta(directory)
    html = _html_text(directory) if getattr(args, "html", False) else None
    if args.json:
        _report_text(directory)  # the paths printed are those of an up-to-date report
        emit_json({"session": meta, "paths": {
            "directory": str(directory), "report": str(directory / REPORT_NAME),
            "html": str(directory / HTML_REPORT_NAME),
            "files": sorted(p.name for p in directory.iterdir() if p.is_file())}})
        return 0
    if html is not None:
        _write_out(html)
    elif out_console.is_terminal:
        _report_text(directory)  # keeps report.md up to date, as when piped
        out_console.print(Markdown(render_report(directory, folded=False)))
    else:
        _write_out(_report_text(directory))
    return 0


def _newest(sessions_dir: Path) -> str:
    try:
        found = scan_sessions(sessions_dir)
    except OSError as exc:
        raise StateError(f"cannot list {sessions_dir}: {exc.strerror or exc}",
                         remedy="run as root (the state directory is private)") from exc
    newest = [str(m.get("id")) for m in found if SESSION_ID_RE.fullmatch(str(m.get("id")))]
    if not newest:
        raise VmRepairError(f"no sessions in {sessions_dir}", remedy="`vmrepair run` records one")
    return newest[0]


def _write_out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _html_text(directory: Path) -> str:
    try:
        return write_html_report(directory).read_text(encoding="utf-8", errors="replace")
    except StateError as exc:
        info(f"warning: HTML report not saved ({exc.message}); showing it anyway")
        return render_html(directory)


def _report_text(directory: Path) -> str:
    path = directory / REPORT_NAME
    if path.is_file() and not _is_stale(path):
        # Bounded and never through a link: anything odd is rendered again from the evidence.
        with contextlib.suppress(StateError):
            return read_regular_file(path, MAX_REPORT_BYTES).decode("utf-8", errors="replace")
    try:
        return write_report(directory).read_text(encoding="utf-8", errors="replace")
    except StateError as exc:
        # A read-only state dir (or a full disk) must not hide the report: show it unsaved.
        info(f"warning: report not saved ({exc.message}); showing it anyway")
        return render_report(directory)


def _is_stale(report: Path) -> bool:
    """The report is older than one of the session's JSON files (the run went on after it)."""
    written = report.stat().st_mtime
    return any(p.stat().st_mtime > written for p in report.parent.glob("*.json"))


def _unknown(sessions_dir: Path, session_id: str) -> VmRepairError:
    newest = [str(m.get("id")) for m in list_sessions(sessions_dir)[:SUGGESTED_IDS]]
    return VmRepairError(
        f"no session {session_id} in {sessions_dir}",
        remedy=("newest: " + ", ".join(newest)) if newest else "there are no sessions yet",
    )


def _row_dict(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "target", "status", "started_at", "finished_at", "summary", "report", "exit_code")
    row = {key: meta.get(key) for key in keys}
    if "unreadable" in meta:
        row["unreadable"] = meta["unreadable"]
    return row


def _cell(value: object, width: int) -> str:
    """One table cell: control characters made visible, folded to one line, capped (printed as plain text)."""
    text = " ".join(cap_text(str(value if value is not None else ""), 4 * width).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _when(value: object) -> str:
    if isinstance(value, str):
        shown = shown_timestamp(value)
        return _cell(value, 32) if shown is None else shown
    return ""
