"""The self-contained HTML report (``report.html``): one file to mail or attach to a ticket, which opens
anywhere without a network — inline CSS, the timeline as an inline SVG Gantt chart, no script.

Layout: the head and the summary of the Markdown report, the rollback command in a box of its own, the
timeline chart, the applied diff of each component, then the same folds as report.md.

Everything from the session is untrusted. The Markdown parts are escaped for Markdown already and are
turned into HTML by markdown-it with raw HTML *off* (any ``<tag>`` that got through is shown as text);
everything built here goes through :func:`html_text`. A Content-Security-Policy meta tag allows
nothing but the inline style and ``data:`` images, so even a mistake here could neither run a
script nor fetch anything.
"""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from orchestrator.fsutil import atomic_write
from orchestrator.report.change import DIFF_LIMIT, diffs_of
from orchestrator.report.escape import excerpt, html_text
from orchestrator.report.files import as_dict, as_list
from orchestrator.report.fold import TITLE_LIMIT
from orchestrator.report.gantt import timeline_svg
from orchestrator.report.parts import ReportParts, report_parts
from orchestrator.report.summary import applied_fixes
from orchestrator.session.evidence import Evidence

HTML_REPORT_NAME = "report.html"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #212121; max-width: 1000px; margin: 1.5em auto;
       padding: 0 1em; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #e0e0e0; padding-bottom: .2em; margin-top: 1.6em; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
code { background: #f5f5f5; padding: 0 .25em; border-radius: 3px; }
pre { background: #f5f5f5; padding: .6em .8em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #e0e0e0; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #fafafa; }
details { border: 1px solid #e0e0e0; border-radius: 4px; padding: .3em .8em; margin: .5em 0; }
summary { cursor: pointer; font-weight: 600; }
.status { display: inline-block; padding: .1em .6em; border-radius: 3px; color: #fff; background: #546e7a;
          font-weight: 700; }
.status.status-repaired, .status.status-healthy { background: #2e7d32; }
.status.status-not_repaired, .status.status-error, .status.status-interrupted { background: #c62828; }
.status.status-not_reproduced, .status.status-pending_reboot, .status.status-running { background: #ef6c00; }
.command { background: #263238; color: #eceff1; font-size: 15px; }
.diff .add { color: #1b5e20; background: #e8f5e9; }
.diff .del { color: #b71c1c; background: #ffebee; }
.diff .hunk { color: #0d47a1; }
.gantt { max-width: 100%; height: auto; }
footer { margin-top: 2em; color: #757575; font-size: 12px; }
"""


def _markdown() -> MarkdownIt:
    # Raw HTML off: the Markdown is escaped already, and nothing from the session may become a tag.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render_html(session_dir: Path) -> str:
    """The HTML report of the session in ``session_dir`` (never raises for its content)."""
    parts = report_parts(session_dir)
    md = _markdown()
    status = str(parts.session.get("status") or "running")
    css_status = "".join(c for c in status if c.isalnum() or c == "_")[:30]
    session_id = parts.session.get("id") or session_dir.name
    badge = html_text(status.replace("_", " ").upper(), 40)
    body = ["<header>", f'<p class="status status-{css_status}">{badge}</p>', md.render(parts.head),
            "</header>",
            '<section id="summary">', md.render(parts.summary), "</section>",
            _rollback(parts), _timeline(parts), _changes(parts), '<section id="details">', "<h2>Details</h2>"]
    body += [f"<details><summary>{html_text(fold.title, TITLE_LIMIT)}</summary>\n{md.render(fold.body)}"
             "</details>" for fold in parts.folds]
    body += ["</section>", f"<footer>Rendered by vmrepair from the JSON files of "
             f"<code>{html_text(str(session_dir), 500)}</code>.</footer>"]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vmrepair report: session {html_text(session_id, 64)} — "
        f"{badge}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>", *body, "</body>",
        "</html>", ""])


def write_html_report(session_dir: Path) -> Path:
    """Render the HTML report and write it atomically to ``session_dir/report.html`` (mode 0600).

    Raises:
        StateError: it could not be written (disk full, permissions).
    """
    path = session_dir / HTML_REPORT_NAME
    atomic_write(path, render_html(session_dir).encode("utf-8"), mode=0o600)
    return path


def _rollback(parts: ReportParts) -> str:
    fixes = [f for f in applied_fixes(parts.session, parts.files) if f.is_live and f.rollback]
    out = ['<section id="rollback">', "<h2>Rollback</h2>"]
    if not fixes:
        return "\n".join([*out, "<p>Nothing to roll back: no fix of this session is on the target.</p>",
                          "</section>"])
    for fix in fixes:
        out += [f"<p>To undo the change to <code>{html_text(fix.component or '(unnamed)', 80)}</code> "
                f"(files backed up in <code>{html_text(fix.backup, 300)}</code>), run as root:</p>",
                f'<pre class="command"><code>{html_text(fix.rollback, 80)}</code></pre>']
    return "\n".join([*out, "</section>"])


def _timeline(parts: ReportParts) -> str:
    svg = timeline_svg(as_list(parts.files.load("timeline").data))
    chart = svg or "<p>No stage was recorded.</p>"
    return f'<section id="timeline">\n<h2>Timeline</h2>\n{chart}\n</section>'


def _changes(parts: ReportParts) -> str:
    out = ['<section id="change">', "<h2>Change applied</h2>"]
    shown = False
    for component in parts.files.components([]):
        package = parts.files.stage(Evidence.FIX_PACKAGE, component)
        if not package.ok:
            continue
        shown = True
        name = html_text(component or "(unnamed)", 80)
        diffs = diffs_of(as_dict(package.data))
        if not diffs:
            out.append(f"<p><code>{name}</code>: no text diff recorded (binary files, or the original "
                       "could not be read); the operations are in its details below.</p>")
        for path, diff in diffs:
            out += [f"<h3><code>{html_text(path, 500)}</code> ({name})</h3>", _diff(diff)]
    if not shown:
        out.append("<p>No fix package was built in this session.</p>")
    return "\n".join([*out, "</section>"])


def _diff(diff: object) -> str:
    text, cut = excerpt(diff, DIFF_LIMIT)
    lines = []
    for line in text.rstrip("\n").split("\n"):
        kind = _line_kind(line)
        escaped = html_text(line, len(line) + 16, fold=False)
        lines.append(f'<span class="{kind}">{escaped}</span>' if kind else escaped)
    note = f"<p><em>{cut:,} characters cut from the middle of this diff.</em></p>" if cut else ""
    return '<pre class="diff"><code>' + "\n".join(lines) + "</code></pre>" + note


def _line_kind(line: str) -> str:
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+") and not line.startswith("+++"):
        return "add"
    if line.startswith("-") and not line.startswith("---"):
        return "del"
    return ""
