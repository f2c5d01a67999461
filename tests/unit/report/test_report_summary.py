"""The summary at the top of report.md and the folds below it, on a real session (a one-file nginx
fix recorded by the integration tests, ``fixtures/20261206T195301Z-334ad1``) and on edge cases."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.report.files import SessionFiles
from orchestrator.report.markdown import render_report
from orchestrator.report.summary import applied_fixes, next_steps, time_to_repair
from tests.unit.report.mdcheck import fenced_blocks

FIXTURE = Path(__file__).parent / "fixtures" / "20261206T195301Z-334ad1"
TXN = "tx-b1152313e25a"
#: Lines of this session's report before issue 14 item 7 (every detail unfolded, every check listed).
LINES_BEFORE = 725


@pytest.fixture
def real(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def _edit(directory: Path, name: str, change: dict[str, Any]) -> None:
    path = directory / f"{name}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


def test_a_one_file_fix_reads_in_its_first_lines(real: Path) -> None:
    text = render_report(real)
    lines = text.split("\n")
    assert len(lines) < LINES_BEFORE // 2
    top = "\n".join(lines[:lines.index("## Details")])
    assert len(top.split("\n")) < 25
    assert "  - `nginx` config\\_invalid (critical): nginx: config test \\`nginx -t\\` exited 1" in top
    assert ("  - `nginx`: REPAIRED — nginx-pristine-conffile applied and verified on the target; changed "
            "`/etc/nginx/sites-available/default` (write\\_file), `systemctl restart nginx.service`") in top
    assert "- **Result:** REPAIRED — validated in a troubleshooting VM, applied, and verified on the target" \
        in top
    assert "- **Time to repair:** 52 s (detection to the end of the run)" in top
    assert f"- **Rollback:** `vmrepair fixes rollback {TXN}`" in top
    assert f"run `vmrepair fixes rollback {TXN}`" in top
    assert "restore the pre-change files" not in text


def test_the_real_attempt_names_its_steps(real: Path) -> None:
    text = render_report(real)
    assert ("| 1 | `restore_conffile` | `restore {offender} from nginx-common's .deb` | ok | 0 | 1.1 s | "
            "restored /etc/nginx/sites-available/default") in text
    assert "| 5 | `wait_active` | `wait until {unit} is active` | ok | 0 | 4.0 s |" in text
    assert "| — | ok |" not in text


def test_details_are_folded_and_balanced(real: Path) -> None:
    outside, _ = fenced_blocks(render_report(real))
    opened = [line for line in outside if line.startswith("<details>")]
    assert opened == ["<details><summary>Timeline: 11 stages</summary>",
                      "<details><summary>Issues found: 5</summary>",
                      "<details><summary>Component nginx: REPAIRED with nginx-pristine-conffile</summary>",
                      "<details><summary>Component host: REPAIRED</summary>"]
    assert outside.count("</details>") == len(opened)
    # The component cleared by another's repair gets one line, not seven "Not reached".
    assert "_No repair of its own: no troubleshooting stage ran for it._" in outside
    assert "_Not reached._" not in outside


def test_passing_checks_are_counted_not_listed(real: Path) -> None:
    text = render_report(real)
    assert "| No regressions | passed | 99/99 |" in text
    assert "_113 passing checks are listed in the session files._" in text
    assert "| No regressions | probe" not in text


def test_a_fold_title_from_the_session_is_html_escaped(real: Path) -> None:
    meta = json.loads((real / "session.json").read_text())
    meta["components"][0]["strategy"] = "<img src=x onerror=alert(1)>"
    (real / "session.json").write_text(json.dumps(meta))
    text = render_report(real)
    assert "with &lt;img src=x onerror=alert(1)&gt;</summary>" in text
    assert not re.search(r"(?<!\\)<img", text)  # Markdown-escaped (\<img) everywhere else


def test_a_txn_id_that_is_not_one_never_becomes_a_command(real: Path) -> None:
    meta = json.loads((real / "session.json").read_text())
    meta["components"][0]["txn"] = "tx-1; rm -rf /"
    (real / "session.json").write_text(json.dumps(meta))
    text = render_report(real)
    assert "vmrepair fixes rollback tx-1" not in text
    assert "is not a transaction id; `vmrepair fixes list` shows the real ones" in text


def test_a_rolled_back_fix_needs_no_rollback(real: Path) -> None:
    meta = json.loads((real / "session.json").read_text())
    del meta["components"][0]["txn"]
    meta["status"] = meta["components"][0]["status"] = "not_repaired"
    (real / "session.json").write_text(json.dumps(meta))
    _edit(real, "apply-nginx", {"status": "rolled_back"})
    fixes = applied_fixes(meta, SessionFiles(real))
    assert [(f.txn, f.status, f.is_live) for f in fixes] == [(TXN, "rolled_back", False)]
    text = render_report(real)
    assert f"- **Rollback:** none needed: transaction `{TXN}` ended rolled\\_back" in text
    assert f"did not stay (see *Apply and backup*): `vmrepair fixes show {TXN}`" in next_steps(meta, fixes)


def test_a_change_left_on_an_unrepaired_target_names_its_rollback(real: Path) -> None:
    meta = json.loads((real / "session.json").read_text())
    meta["status"] = "not_repaired"
    step = next_steps(meta, applied_fixes(meta, SessionFiles(real)))
    assert "A change was applied to the target and is still there." in step
    assert f"`vmrepair fixes rollback {TXN}`" in step


def test_nothing_applied_says_so(tmp_path: Path) -> None:
    meta = {"status": "not_reproduced", "started_at": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "session.json").write_text(json.dumps(meta))
    text = render_report(tmp_path)
    assert "- **Rollback:** nothing to roll back: nothing was applied to the target" in text
    assert "- **Time to repair:** not finished" in text


@pytest.mark.parametrize(("started", "finished", "shown"), [
    ("2026-01-01T00:00:00+00:00", "2026-01-01T00:02:05+00:00",
     "2 min 05 s (detection to the end of the run)"),
    (None, "2026-01-01T00:02:05+00:00", "unknown (no start recorded)"),
    # A time without a zone is no moment (parse_timestamp refuses it), so no start is known.
    ("2026-01-01T00:00:00", "2026-01-01T00:02:05+00:00", "unknown (no start recorded)"),
    ("yesterday", None, "unknown (no start recorded)"),
])
def test_time_to_repair(started: str | None, finished: str | None, shown: str) -> None:
    assert time_to_repair({"started_at": started, "finished_at": finished}) == shown


def test_a_report_only_outcome_reads_as_reported_not_as_a_failed_repair(real: Path) -> None:
    meta = json.loads((real / "session.json").read_text())
    assert meta["components"][2]["summary"].startswith("reported, not repaired")
    meta["components"][2]["report_only"] = True
    (real / "session.json").write_text(json.dumps(meta))
    text = render_report(real)
    assert "`nginx`: REPORTED (never repaired by design) — reported, not repaired" in text
    assert "NOT REPAIRED" not in text.split("- **Result:**")[0]
