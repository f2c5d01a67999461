"""report.md from a session directory: sections, hostile guest strings, missing and broken files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import StateError
from orchestrator.model import SessionStatus
from orchestrator.repair.log import CommandRecord, StepResult, StepStatus
from orchestrator.report.markdown import render_report, write_report
from orchestrator.session.store import Session, new_session
from tests.unit.report.mdcheck import CELL_PIPE, fenced_blocks

FENCE = "```\n# Injected heading\n```"
TICKS = "`" * 20
CONTROL = "\x1b[31mred\x1b[0m\r\x00\x07"
HUGE = "START" + "A" * 1_000_000 + "THE END"
HTML = "<script>alert(1)</script>"
SHA_BEFORE = "a" * 64
SHA_AFTER = "b" * 64
TXN = "tx-0123456789ab"


def _validation(passed: bool = True) -> dict[str, Any]:
    def layer(name: str, ok: bool, detail: str = "") -> dict[str, Any]:
        return {"name": name, "status": "passed" if ok else "failed", "passed": ok, "duration_s": 1.25,
                "detail": detail or ("all 1 checks passed" if ok else "1 of 1 checks failed"),
                "checks": [{"name": f"{name} check {HTML}", "ok": ok,
                            "detail": "fine" if ok else f"HTTP 503 {CONTROL} | {FENCE}", "duration_s": 0.01}]}

    return {"passed": passed, "issue": "nginx:config_invalid:1234abcd", "component": "nginx",
            "layers": [layer("resolved", True), layer("stable", passed), layer("no_regressions", True),
                       layer("core_features", True)]}


def _step(index: int, kind: str, action: str, status: StepStatus, output: str) -> dict[str, Any]:
    """A step as the attempts stage writes it (through the pipeline's own records)."""
    command = CommandRecord(("sh", "-c", f"{kind} | x"), 0 if status == "ok" else 1, output, 0.2)
    return StepResult(index, kind, action, status, 0.25, [command], detail=f"{kind} done {HTML}").as_dict()


def _stage(session: Session, name: str, detail: str = "", status: str | None = None) -> None:
    with session.stage(name) as record:
        record.detail = detail
        if status:
            record.status = status


@pytest.fixture
def repaired(tmp_path: Path) -> Session:
    """A finished session in the pipeline's format, with hostile text wherever a guest could put some."""
    session = new_session(tmp_path / "sessions", "ssh://root@web1")
    _stage(session, "connect")
    _stage(session, "detect", f"1 issue(s) {FENCE}")
    issue = {"id": "nginx:config_invalid:1234abcd", "component": "nginx", "kind": "config_invalid",
             "severity": "critical", "subject": "nginx | x", "summary": f"nginx -t fails {CONTROL}",
             "probe": "config:nginx", "fingerprint": "1234abcd" * 2,
             "evidence": {"stderr": f'nginx: [emerg] unknown directive "lisen" {FENCE}', "huge": HUGE}}
    results = [("config:nginx", "nginx", False, "fails", False),
               ("unit:cron.service", "cron", True, "ok", False), ("disk:/", "host", False, "no df", True)]
    session.write_json("detect", {"issues": [issue], "results": [
        dict(zip(("probe", "component", "ok", "summary", "unavailable"), r, strict=True)) for r in results]})
    session.write_json("triage-nginx", {"in_place": False, "reason": "config error: needs a VM"})
    session.write_json("reproduce-nginx", {"probe": "config:nginx", "ok": False, "summary": "nginx -t fails",
                                           "evidence": {"stderr": TICKS}, "import_complete": True})
    session.write_json("diagnosis-nginx", {
        "cause": "config_syntax", "confidence": 0.9, "playbook": "nginx",
        "variables": {"file": "/etc/nginx/sites-enabled/default"},
        "evidence": [{"source": "nginx -t", "excerpt": f"unknown directive {TICKS}"}, HUGE]})
    session.write_json("attempts-nginx", [
        {"strategy": "restore_baseline", "playbook": "nginx", "score": 0.5, "rank": 1,
         "outcome": "validation_failed",
         "steps": [_step(1, "restore_baseline", "restore {offender} from the baseline", "failed", HUGE)],
         "validation": _validation(False)},
        {"strategy": "fix_directive", "playbook": "nginx", "score": 0.4, "rank": 2, "outcome": "validated",
         "steps": [_step(1, "edit", "fix {directive}", "ok", f"{CONTROL}{FENCE}")],
         "validation": _validation(True)},
    ])
    session.write_json("fix-package-nginx", {
        "id": "pkg-1", "directory": "/var/lib/vmrepair/packages/pkg-1", "strategy": "fix_directive",
        "reboot_required": False,
        "operations": [
            {"op": "write_file", "path": "/etc/nginx/nginx.conf", "sha256": SHA_AFTER, "size": 10,
             "mode": 0o644, "uid": 0, "gid": 0, "expect_sha256": SHA_BEFORE},
            {"op": "write_file", "path": "/etc/nginx/conf.d/new|file.conf", "sha256": SHA_AFTER, "size": 1,
             "mode": 0o600, "uid": 33, "gid": 33, "expect_sha256": "absent"},
            {"op": "unit", "unit": "nginx.service", "action": "restart"}],
        "diffs": {"/etc/nginx/nginx.conf": f"--- a\n+++ b\n-lisen 80;\n+listen 80;\n {FENCE}\n"}})
    backup = "/var/lib/vmrepair/backups/x/nginx"
    session.write_json("apply-nginx", {"status": "applied", "backup_dir": backup, "operations": 3,
                                       "txn_id": TXN})
    session.write_json("target-validation-nginx", _validation(True))
    _stage(session, "apply", f"applied; backup in {backup}")
    session.set_meta(issues=[issue], components=[
        {"component": "nginx", "issue": issue["id"], "status": "repaired",
         "summary": f"fix_directive applied {HTML}", "strategy": "fix_directive", "backup": backup}])
    session.finish(SessionStatus.REPAIRED, f"nginx: repaired {FENCE} {CONTROL}")
    return session


def _headings(markdown: str) -> list[str]:
    outside, _ = fenced_blocks(markdown)
    return [line for line in outside if line.startswith("#")]


def test_sections_in_order(repaired: Session) -> None:
    headings = _headings(render_report(repaired.dir))
    assert headings == [
        f"# vmrepair report: session `{repaired.id}`",
        "## Summary",
        "## Details",
        "### Issue 1: `nginx:config_invalid:1234abcd`",
        "### Triage",
        "### Reproduction in the troubleshooting VM",
        "### Diagnosis",
        "### Repair attempts in the troubleshooting VM",
        "#### Attempt 1: `restore_baseline` — **VALIDATION FAILED**",
        "#### Attempt 2: `fix_directive` — validated",
        "### Change (fix package)",
        "#### Diff of `/etc/nginx/nginx.conf`",
        "### Apply and backup",
        "### Validation on the target",
    ]
    outside, _ = fenced_blocks(render_report(repaired.dir))
    assert [line for line in outside if line.startswith("<details>")] == [
        "<details><summary>Timeline: 3 stages</summary>",
        "<details><summary>Issues found: 1</summary>",
        "<details><summary>Component nginx: REPAIRED with fix_directive</summary>",
    ]
    assert outside.count("</details>") == 3


def test_status_summary_and_next_step_come_first(repaired: Session) -> None:
    text = render_report(repaired.dir)
    lines = text.split("\n")
    assert lines[2].startswith("**Status: REPAIRED** — nginx: repaired \\`\\`\\` # Injected heading")
    assert "- **Target:** `ssh://root@web1`; **session directory:** `" + str(repaired.dir) + "`" in lines
    step = next(line for line in lines if line.startswith("**Next step:**"))
    assert "validated there" in step
    assert f"run `vmrepair fixes rollback {TXN}` (it restores the files backed up in " \
           "`/var/lib/vmrepair/backups/x/nginx`" in step
    assert f"- **Rollback:** `vmrepair fixes rollback {TXN}`" in lines
    assert lines.index(step) < lines.index("## Details")


def test_hostile_strings_are_escaped_and_capped(repaired: Session) -> None:
    text = render_report(repaired.dir)
    for raw in ("\x1b", "\x00", "\r", "\x07"):
        assert raw not in text
    assert len(text) < 100_000  # three copies of a 1 MB string went in
    assert text.count("characters cut from the middle of this output") == 3
    assert "THE END" in text
    outside, bodies = fenced_blocks(text)
    assert not any(line.startswith("# Injected") for line in outside)
    assert any("# Injected heading" in body for body in bodies)
    assert not any("<script>" in line for line in outside)
    assert any("\\<script\\>" in line for line in outside)
    # Every table row has exactly as many cell separators as its header.
    tables: dict[int, int] = {}
    for n, line in enumerate(outside):
        if line.startswith("|"):
            start = n if n == 0 or not outside[n - 1].startswith("|") else next(
                k for k in sorted(tables, reverse=True) if k <= n)
            tables.setdefault(start, len(CELL_PIPE.findall(line)))
            assert len(CELL_PIPE.findall(line)) == tables[start], line


def test_steps_are_named_as_the_attempts_stage_records_them(repaired: Session) -> None:
    """Regression (issue 14 item 7): every step of a real attempt showed "—" (the report read ``name``)."""
    text = render_report(repaired.dir)
    assert ("| 1 | `restore_baseline` | `restore {offender} from the baseline` | **FAILED** | 1 | 0.2 s |"
            in text)
    assert "| 1 | `edit` | `fix {directive}` | ok | 0 | 0.2 s | edit done" in text
    # Only the failed step's output is shown; the one that went fine is in the session files.
    assert "Step 1 ran `sh -c restore_baseline | x` (exit 1):" in text
    assert "Step 1 ran `sh -c edit | x`" not in text


def test_diagnosis_attempts_and_validation_details(repaired: Session) -> None:
    text = render_report(repaired.dir)
    assert "- **Cause:** `config_syntax`" in text
    assert "- **Confidence:** 90%" in text
    assert "| 1 | `restore_baseline` | 0.50 | **VALIDATION FAILED** | — |" in text
    assert "Verdict: **FAILED**" in text
    assert "| Stable under load | **FAILED** | 0/1 | 1.2 s | 1 of 1 checks failed |" in text
    assert "**FAILED** | 0.0 s | HTTP 503 \\\\x1b\\[31mred" in text
    assert "1 probes ran" not in text
    assert "3 probes ran on the target: 1 passed, 1 failed, 1 could not run." in text


def test_change_table_diff_and_backup(repaired: Session) -> None:
    text = render_report(repaired.dir)
    assert ("| 1 | write\\_file | `/etc/nginx/nginx.conf` | `aaaaaaaaaaaa` | `bbbbbbbbbbbb` | 0644 | "
            "uid 0 / gid 0 |") in text
    assert "| 2 | write\\_file | `/etc/nginx/conf.d/new\\|file.conf` | absent (new file) |" in text
    assert "| 3 | unit | `systemctl restart nginx.service` | — | — | — | — |" in text
    _, bodies = fenced_blocks(text)
    assert any(body.startswith("--- a\n+++ b\n-lisen 80;\n+listen 80;") for body in bodies)
    assert "- **Result:** applied" in text
    assert "- **Backup of the files before the change:** `/var/lib/vmrepair/backups/x/nginx`" in text


def test_a_session_that_stopped_early_says_not_reached(tmp_path: Path) -> None:
    session = new_session(tmp_path, "local")
    text = render_report(session.dir)
    assert "**Status: UNFINISHED**" in text
    assert text.count("_Not reached._") == 3  # timeline, issues, repair
    assert "This session has not finished" in text


def test_a_component_without_stage_files_reads_not_reached(tmp_path: Path) -> None:
    session = new_session(tmp_path, "local")
    session.set_meta(components=[{"component": "sampleapp", "status": "error", "summary": "sandbox failed"}])
    session.finish(SessionStatus.ERROR, "sandbox: no template built")
    text = render_report(session.dir)
    for section in ("Triage", "Reproduction in the troubleshooting VM", "Diagnosis",
                    "Repair attempts in the troubleshooting VM", "Change (fix package)", "Apply and backup",
                    "Validation on the target"):
        assert f"### {section}\n\n_Not reached._" in text
    assert "vmrepair stopped with an error" in text


def test_broken_files_are_reported_not_fatal(repaired: Session) -> None:
    (repaired.dir / "timeline.json").write_text("{not json")
    (repaired.dir / "attempts-nginx.json").write_bytes(b"\xff\xfe")
    (repaired.dir / "diagnosis-nginx.json").write_text('"just a string"')
    text = render_report(repaired.dir)
    assert "Z.\n\n_Could not be shown: timeline.json is not valid JSON" in text
    assert "### Repair attempts in the troubleshooting VM\n\n_Could not be shown: attempts-nginx.json" in text
    assert "- **Cause:** `unknown`" in text


def test_missing_session_json_still_renders(tmp_path: Path) -> None:
    directory = tmp_path / "20260101T000000Z-abcdef"
    directory.mkdir()
    text = render_report(directory)
    assert text.startswith("# vmrepair report: session `20260101T000000Z-abcdef`")
    assert "**session.json:** _Not reached._" in text


def test_healthy_session(tmp_path: Path) -> None:
    session = new_session(tmp_path, "local")
    session.write_json("detect", {"issues": [], "results": [
        {"probe": "unit:nginx.service", "component": "nginx", "ok": True, "summary": "active"}]})
    session.set_meta(issues=[], components=[])
    session.finish(SessionStatus.HEALTHY, "all watched components pass their probes")
    text = render_report(session.dir)
    assert "**Status: HEALTHY**" in text
    assert ("<summary>Issues found: 0</summary>\n\n1 probes ran on the target: 1 passed, 0 failed, "
            "0 could not run.") in text
    assert "_No issue._" in text
    assert "Component" not in text
    assert "Repair: not reached" not in text
    assert "Nothing to do" in text


def test_unsuffixed_stage_files_with_before_after_keys(tmp_path: Path) -> None:
    session = new_session(tmp_path, "local")
    session.write_json("attempts", {"attempts": [
        {"strategy": "s1", "score": 1, "outcome": "failed", "reason": "step exploded",
         "steps": [_step(1, "x", "do x", "failed", "out and err")]}]})
    session.write_json("fix-package", {"operations": [
        {"path": "/etc/a", "action": "write_file", "before_sha256": SHA_BEFORE, "after_sha256": SHA_AFTER,
         "mode": "0640", "owner": "root", "group": "adm", "diff": "-a\n+b\n"}]})
    session.write_json("apply", {"status": "rolled_back", "backup": "/b"})
    session.write_json("validation", _validation(False))
    session.finish(SessionStatus.NOT_REPAIRED, "no")
    text = render_report(session.dir)
    assert "<details><summary>Component (unnamed)</summary>" in text
    assert "| 1 | `x` | `do x` | **FAILED** | 1 | 0.2 s | x done \\<script\\>alert(1)\\</script\\> |" in text
    assert "Step 1 ran `sh -c x | x` (exit 1):\n\n```text\nout and err\n```" in text
    assert "| 1 | write\\_file | `/etc/a` | `aaaaaaaaaaaa` | `bbbbbbbbbbbb` | 0640 | root:adm |" in text
    assert "#### Diff of `/etc/a`" in text
    assert "- **Result:** **ROLLED\\_BACK**" in text
    assert "### Validation\n\nVerdict: **FAILED**" in text


def test_write_report_is_private_and_atomic(repaired: Session) -> None:
    path = write_report(repaired.dir)
    assert path == repaired.dir / "report.md"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == render_report(repaired.dir)
    assert not list(repaired.dir.glob(".report.md.*"))


def test_write_report_failure_is_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot write"):
        write_report(tmp_path / "gone")


def test_report_is_valid_utf8_json_safe(repaired: Session) -> None:
    # The CLI prints it and --json embeds paths; make sure nothing undecodable sneaks in.
    json.dumps(render_report(repaired.dir))


def test_a_fifo_evidence_file_is_reported_not_waited_for(repaired: Session) -> None:
    """Regression (issue 13 item 5): a FIFO in the session directory hung `vmrepair report`."""
    (repaired.dir / "timeline.json").unlink()
    os.mkfifo(repaired.dir / "timeline.json")
    text = render_report(repaired.dir)
    assert "Z.\n\n_Could not be shown: timeline.json is not a regular file (a FIFO)" in text


def test_the_report_says_what_the_vm_lacked_and_which_unit_states_were_mirrored(repaired: Session) -> None:
    repaired.write_json("reproduce-nginx", {
        "probe": "config:nginx", "ok": False, "summary": "nginx -t: command not found",
        "import_complete": True, "unit_states": ["mask nginx.service: done"],
        "absent_removed": ["/etc/nginx/sites-enabled/default"], "owners_mapped": ["useradd myapp"],
        "environment": {"missing_in_vm": ["package nginx 1.22.1-9 is installed on the target, not in the VM"],
                        "notes": ["package libc6: 2.36-9 on the target, 2.36-8 in the VM"]}})
    markdown = render_report(repaired.dir)
    assert "**NOT REPRODUCED**: the VM differs from the target, so its probe proves nothing" in markdown
    assert "- **The VM lacks:** package nginx 1.22.1-9 is installed on the target, not in the VM" in markdown
    assert "- **Unit states mirrored from the target:** mask nginx.service: done" in markdown
    assert "- **Removed from the VM (absent on the target):** `/etc/nginx/sites-enabled/default`" in markdown
    assert "- **Owners set by name as on the target:** useradd myapp" in markdown
    assert "- **Differs:** package libc6: 2.36-9 on the target, 2.36-8 in the VM" in markdown


def test_the_report_names_the_host_layer_and_what_it_added(repaired: Session) -> None:
    repaired.write_json("reproduce-nginx", {
        "probe": "config:nginx", "ok": False, "summary": "apache2ctl configtest exited 1",
        "layer": {"used": "5e0beb7d795839d7" + "0" * 48, "built_now": True, "build_seconds": 211.8,
                  "added": ["apache2:amd64=2.4.68-1~deb12u1", "mariadb-server:amd64=1:10.11.18-0+deb12u1"],
                  "sources": {"target-cache": 1, "mirror": 1}, "notes": ["x: downloaded instead"],
                  "fallback": "", "template": "debian-12"}})
    markdown = render_report(repaired.dir)
    assert ("- **Host layer:** `5e0beb7d795839d7` (built now in 211.8 s): 2 packages of the target's added "
            "to the template (1 from target-cache, 1 from mirror)") in markdown
    assert "`apache2:amd64=2.4.68-1~deb12u1`, `mariadb-server:amd64=1:10.11.18-0+deb12u1`" in markdown
    assert "- **Layer note:** x: downloaded instead" in markdown


def test_the_report_says_why_the_vm_stayed_on_the_template(repaired: Session) -> None:
    repaired.write_json("reproduce-nginx", {
        "probe": "config:nginx", "ok": False, "summary": "s",
        "layer": {"used": "", "template": "debian-12", "plan": {"notes": ["the target runs Debian 11"]},
                  "fallback": "the target's architecture arm64 is not the template's amd64"}})
    markdown = render_report(repaired.dir)
    assert ("- **Environment:** the plain template `debian-12`; no host layer: the target's architecture "
            "arm64 is not the template's amd64") in markdown
    assert "- **Environment note:** the target runs Debian 11" in markdown


def test_node_and_unit_state_operations_are_listed(tmp_path: Path) -> None:
    session = new_session(tmp_path, "local")
    session.write_json("fix-package", {"operations": [
        {"op": "make_dir", "path": "/etc/a.d", "mode": 0o750, "uid": 0, "gid": 0},
        {"op": "symlink", "path": "/etc/cur", "target": "v2", "uid": 0, "gid": 0, "expect_target": "v1"},
        {"op": "remove_dir", "path": "/etc/old.d"},
        {"op": "unit_state", "unit": "app.service", "state": "masked", "expect": "enabled"}]})
    session.finish(SessionStatus.NOT_REPAIRED, "no")
    text = render_report(session.dir)
    assert ("| 1 | make\\_dir | `/etc/a.d` | absent (new directory) | directory | 0750 | uid 0 / gid 0 |"
            in text)
    assert "| 2 | symlink | `/etc/cur` | link → v1 | link → v2 |" in text
    assert "| 3 | remove\\_dir | `/etc/old.d` | empty directory | removed |" in text
    assert "| 4 | unit\\_state | `app.service` | is-enabled: enabled | masked |" in text
