"""report.html: self-contained (no script, nothing fetched), the timeline as an SVG Gantt chart, the
applied diff and the rollback command, everything from the session escaped."""

from __future__ import annotations

import json
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.report.gantt import bars, timeline_svg
from orchestrator.report.html import render_html
from orchestrator.report.markdown import write_report

FIXTURE = Path(__file__).parent / "fixtures" / "20261206T195301Z-334ad1"
TXN = "tx-b1152313e25a"
HOSTILE = '<script>alert(1)</script><img src="http://evil.example/x.png"></pre></svg>'
#: Every element the report may contain; anything else (script, img, iframe, link ...) is a leak.
ALLOWED = {"html", "head", "meta", "title", "style", "body", "header", "section", "footer", "h1", "h2", "h3",
           "h4", "p", "ul", "ol", "li", "strong", "em", "code", "pre", "span", "table", "thead", "tbody",
           "tr", "th", "td", "details", "summary", "hr", "br", "svg", "g", "rect", "line", "text"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


@pytest.fixture
def real(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def _hostile(directory: Path) -> None:
    """Hostile text wherever a target or the session file could put some."""
    timeline = json.loads((directory / "timeline.json").read_text())
    timeline[0]["name"] = HOSTILE
    timeline[1]["status"] = HOSTILE
    (directory / "timeline.json").write_text(json.dumps(timeline))
    meta = json.loads((directory / "session.json").read_text())
    meta["summary"] = HOSTILE
    meta["components"][0]["strategy"] = HOSTILE
    meta["issues"][0]["summary"] = HOSTILE
    (directory / "session.json").write_text(json.dumps(meta))
    package = json.loads((directory / "fix-package-nginx.json").read_text())
    package["diffs"] = {HOSTILE: f"--- a\n+++ b\n@@ -1 +1 @@\n-{HOSTILE}\n+listen 80;\n"}
    (directory / "fix-package-nginx.json").write_text(json.dumps(package))


def test_the_page_is_self_contained(real: Path) -> None:
    text = render_html(real)
    assert text.startswith("<!DOCTYPE html>")
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">") in text
    parsed = _parse(text)
    assert set(parsed.tags) <= ALLOWED
    assert not [v for k, v in parsed.attrs if k in {"src", "href"}]


def test_summary_timeline_and_rollback_are_there(real: Path) -> None:
    text = render_html(real)
    assert '<p class="status status-repaired">REPAIRED</p>' in text
    assert "<h2>Summary</h2>" in text
    assert "<strong>Time to repair:</strong> 52 s" in text
    assert f'<pre class="command"><code>vmrepair fixes rollback {TXN}</code></pre>' in text
    parsed = _parse(text)
    assert parsed.tags.count("svg") == 1
    assert parsed.tags.count("rect") == 11  # one bar per stage of timeline.json
    assert "<title>attempt-2: ok, 13 s</title>" in text
    assert text.count("<details>") == 4


def test_the_applied_diff_is_shown_coloured(real: Path) -> None:
    package = json.loads((real / "fix-package-nginx.json").read_text())
    diff = "--- a\n+++ b\n@@ -47 +47 @@\n-lisen 80;\n+listen 80;\n"
    package["diffs"] = {"/etc/nginx/sites-available/default": diff}
    (real / "fix-package-nginx.json").write_text(json.dumps(package))
    text = render_html(real)
    assert "<h3><code>/etc/nginx/sites-available/default</code> (nginx)</h3>" in text
    assert ('<pre class="diff"><code>--- a\n+++ b\n<span class="hunk">@@ -47 +47 @@</span>\n'
            '<span class="del">-lisen 80;</span>\n<span class="add">+listen 80;</span></code></pre>') in text


def test_no_diff_recorded_says_so(real: Path) -> None:
    assert "<code>nginx</code>: no text diff recorded" in render_html(real)


def test_hostile_session_text_is_escaped_everywhere(real: Path) -> None:
    _hostile(real)
    text = render_html(real)
    parsed = _parse(text)
    assert set(parsed.tags) <= ALLOWED
    assert "<script" not in text and "<img" not in text
    assert not [v for k, v in parsed.attrs if k in {"src", "href"}]
    assert parsed.tags.count("pre") == text.count("</pre>")
    assert parsed.tags.count("svg") == text.count("</svg>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert '<span class="del">-&lt;script&gt;' in text


def test_nothing_applied_has_nothing_to_roll_back(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text(json.dumps({"status": "not_reproduced"}))
    text = render_html(tmp_path)
    assert "Nothing to roll back" in text
    assert "No stage was recorded." in text
    assert "No fix package was built in this session." in text


def test_write_report_writes_both_reports_privately(real: Path) -> None:
    write_report(real)
    html_path = real / "report.html"
    assert stat.S_IMODE(html_path.stat().st_mode) == 0o600
    assert html_path.read_text(encoding="utf-8") == render_html(real)


def test_bars_follow_the_timeline_and_survive_odd_values() -> None:
    stages = [{"name": "a", "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 2, "status": "ok"},
              {"name": "b", "started_at": "2026-01-01T00:00:05+00:00", "duration_s": float("inf"),
               "status": "failed"},
              {"name": "c", "started_at": "not a time", "duration_s": "x"},
              "not a stage"]
    drawn = bars(stages)
    assert [(b.name, b.offset, b.seconds) for b in drawn] == [("a", 0.0, 2.0), ("b", 5.0, 0.0),
                                                              ("c", 5.0, 0.0), ("?", 5.0, 0.0)]
    svg = timeline_svg(stages)
    assert 'fill="#c62828"' in svg  # the failed stage in red
    assert timeline_svg([]) == ""
