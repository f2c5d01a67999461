"""report.html in a real browser: headless Chromium renders a real session's report (a one-file nginx
fix recorded by an integration run); the screenshot must show a page (not blank: many colours, the
rollback box and the timeline bars in their colours) and the DOM must hold the summary, the timeline
SVG and the rollback command.

Needs only Debian's ``chromium`` (``scripts/host-packages.sh`` installs it), no VM. The screenshot is
kept at a stable path under the test's tmp directory and printed, to look at by eye.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.report.html import write_html_report
from tests.integration.pngcheck import colours

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "unit" / "report" / "fixtures" / "20261206T195301Z-334ad1"
TXN = "tx-b1152313e25a"
WINDOW = (1100, 1800)
#: Colours the stylesheet and the chart use: the rollback command box, a stage bar ("ok"), an added
#: diff line's background.
COMMAND_BOX, BAR_OK, DIFF_ADD = (0x26, 0x32, 0x38), (0x2E, 0x7D, 0x32), (0xE8, 0xF5, 0xE9)
DIFF = ("--- /etc/nginx/sites-available/default\n+++ /etc/nginx/sites-available/default\n"
        "@@ -47 +47 @@\n-this_is_not_a_directive;\n+# (restored from nginx-common)\n")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (scripts/host-packages.sh installs Debian's chromium)")


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(screenshot, DOM) of the report of the fixture session, its diff recorded."""
    chromium = _chromium()
    work = tmp_path_factory.mktemp("report-html")
    session = Path(shutil.copytree(FIXTURE, work / FIXTURE.name))
    package = session / "fix-package-nginx.json"
    package.write_text(json.dumps({**json.loads(package.read_text()),
                                   "diffs": {"/etc/nginx/sites-available/default": DIFF}}))
    page = write_html_report(session).as_uri()
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={work / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    screenshot = work / "report-screenshot.png"
    shot = _run([*common, f"--screenshot={screenshot}", page])
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr.decode(errors="replace")[-2000:]
    print(f"screenshot of report.html: {screenshot}")
    dom = _run([*common, "--dump-dom", page])
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    return screenshot, dom.stdout.decode("utf-8", errors="replace")


def test_the_screenshot_is_a_rendered_page(rendered: tuple[Path, str]) -> None:
    screenshot, _ = rendered
    counts = colours(screenshot.read_bytes())
    total = sum(counts.values())
    assert total == WINDOW[0] * WINDOW[1]
    assert len(counts) > 50, f"only {len(counts)} colours: a blank page"
    background, most = counts.most_common(1)[0]
    assert most < 0.97 * total, f"{most / total:.0%} of the page is {background}"
    # The rollback box and the timeline's bars are drawn, not just text (a few hundred pixels each).
    assert counts[COMMAND_BOX] > 2000
    assert counts[BAR_OK] > 2000
    assert counts[DIFF_ADD] > 500


def test_the_dom_holds_the_summary_the_timeline_and_the_rollback(rendered: tuple[Path, str]) -> None:
    _, dom = rendered
    assert "<h2>Summary</h2>" in dom
    assert "<strong>Time to repair:</strong> 52 s" in dom
    assert f'<pre class="command"><code>vmrepair fixes rollback {TXN}</code></pre>' in dom
    svg = dom[dom.index("<svg"):dom.index("</svg>")]
    assert svg.count("<rect") == 11
    assert "<title>apply: ok, 9.6 s</title>" in svg
    assert '<span class="add">+# (restored from nginx-common)</span>' in dom
    assert "<script" not in dom
