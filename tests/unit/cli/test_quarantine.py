"""`vmrepair quarantine list|release`: parsing, output, exit codes, and a release through the CLI's
own wiring (settings' quarantine dir, watch config and audit log)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.cli import quarantine as cli_quarantine
from orchestrator.cli.main import main
from orchestrator.cli.output import out_console
from orchestrator.config.daemon import AuditSettings
from orchestrator.config.settings import Settings
from orchestrator.quarantine import list_quarantined, quarantine_component, release
from tests.unit.quarantine.target import NGINX, WATCH, Target, make_target

MOMENT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def quarantined(reason: str = "flapping") -> Target:
    target = make_target()
    quarantine_component(target.transport, target.agent, NGINX, reason, audit=target.audit,
                         watch=WATCH, now=lambda: MOMENT)
    return target


def test_register_adds_list_and_release_with_local_default() -> None:
    parser = argparse.ArgumentParser()
    cli_quarantine.register(parser.add_subparsers(dest="command"))
    listing = parser.parse_args(["quarantine", "list", "--all"])
    assert (listing.target, listing.all, listing.handler) == ("local", True, cli_quarantine.cmd_list)
    freeing = parser.parse_args(["quarantine", "release", "nginx", "--target", "vm:web"])
    assert (freeing.name, freeing.target, freeing.handler, freeing.takes_lock) == (
        "nginx", "vm:web", cli_quarantine.cmd_release, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["quarantine"])


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    records = list_quarantined(quarantined().agent)
    assert cli_quarantine.show_list("vm:web", records, as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == "vm:web"
    (entry,) = data["quarantined"]
    assert (entry["component"], entry["status"], entry["reason"]) == ("nginx", "quarantined", "flapping")
    assert entry["units"][0]["unit_file_state"] == "enabled"


def test_list_table_escapes_text_from_the_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(out_console, "width", 300)
    records = list_quarantined(quarantined("[red]x[/red] keeps failing").agent)
    cli_quarantine.show_list("local", records, as_json=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "quarantined on local" in out
    assert "[red]x[/red] keeps failing" in out
    assert "nginx.service" in out


def test_empty_list_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_quarantine.show_list("local", [], as_json=False) == 0
    assert capsys.readouterr().err.strip() == "nothing is quarantined on local"


def test_verified_release_exits_0_and_says_what_came_back(capsys: pytest.CaptureFixture[str]) -> None:
    target = quarantined()
    result = release(target.transport, target.agent, "nginx", audit=target.audit, watch=WATCH,
                     sleep=lambda _s: None)
    assert cli_quarantine.show_release("local", result, as_json=False) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert ("released nginx on local: 5 file(s) moved back from "
            "/var/lib/vmrepair/quarantine/nginx/20260102T030405Z") in err
    assert "released and verified: its probes pass" in err


def test_unhealthy_release_exits_1_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    target = quarantined()
    target.vm.answers["curl",] = (7, b"000", b"curl: (7) Failed to connect\n")
    result = release(target.transport, target.agent, "nginx", audit=target.audit, watch=WATCH,
                     sleep=lambda _s: None)
    assert cli_quarantine.show_release("local", result, as_json=True) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["verified"], data["component"]) == (False, "nginx")
    assert data["outcome"].startswith("released, but not healthy: ")


def test_release_on_uses_the_settings_root_watch_and_audit_log(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    audit_path = tmp_path / "audit" / "audit.jsonl"
    settings = make_settings(watch=WATCH, audit=AuditSettings(path=audit_path))
    settings = dataclasses.replace(settings, state_dir=Path("/var/lib/vmrepair"))
    target = quarantined()
    result = cli_quarantine.release_on(App(settings), target.transport, target.agent, "nginx")
    assert result.record.directory.startswith(str(settings.quarantine_dir))
    assert result.is_verified is True
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(r["event"], r["component"], r["status"]) for r in records] == [
        ("quarantine_release", "nginx", "released")]


def test_refused_release_exits_15_with_the_reason(
    cli_env: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["quarantine", "release", "../etc"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 15
    assert "error: '../etc' is not a component name" in err
    assert "remedy: component names are lower-case letters, digits, '-' and '_'" in err
