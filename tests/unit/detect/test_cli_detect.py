"""`vmrepair detect`: argument parsing, exit codes, JSON and the table for people."""

from __future__ import annotations

import argparse
import json

import pytest

from orchestrator.cli import detect as cli_detect
from orchestrator.cli.output import out_console
from orchestrator.detect import Detector
from tests.unit.detect.fakes import FAILED, HOST_PROBES, FakeHost, target_agent
from tests.unit.template_watch import template_watch

WATCH = template_watch()


def _report(host: FakeHost):
    return Detector(WATCH, host.transport(), target_agent()).run()


def test_register_adds_detect_with_a_required_target() -> None:
    parser = argparse.ArgumentParser()
    cli_detect.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["detect", "--target", "vm:web"])
    assert (args.target, args.handler) == ("vm:web", cli_detect.cmd_detect)
    with pytest.raises(SystemExit):
        parser.parse_args(["detect"])


def test_healthy_target_exits_0_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_detect.show_report("vm:web", _report(FakeHost()), as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["issues"] == []
    assert data["target"] == "vm:web"
    assert len(data["results"]) == 34 + len(HOST_PROBES)   # the template resolved: 34 component probes


def test_issues_exit_1_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_detect.show_report("local", _report(FakeHost(units={"nginx.service": FAILED})),
                                  as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [i["probe"] for i in data["issues"]] == ["unit:nginx.service"]


def test_one_fault_of_a_component_is_one_entry_with_related_evidence(
    capsys: pytest.CaptureFixture[str]
) -> None:
    listening = b"".join(line + b"\n" for line in FakeHost().listening.splitlines() if b":80 " not in line)
    host = FakeHost(units={"nginx.service": FAILED}, listening=listening)
    code = cli_detect.show_report("local", _report(host), as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and len(data["issues"]) == 2
    assert data["by_component"] == [{"component": "nginx", "primary": "unit:nginx.service",
                                     "related": ["port:nginx:80"]}]


def test_table_for_people_escapes_markup_from_the_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that rich does not wrap or elide the summary column.
    monkeypatch.setattr(out_console, "width", 300)
    host = FakeHost(units={"ssh.service": {**FAILED, "Result": "[red]x[/red]"}})
    code = cli_detect.show_report("local", _report(host), as_json=False)
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert code == 1
    assert "issues on local" in out
    assert "[red]x[/red]" in out
    assert "unit_failed" in out


def test_unavailable_probes_are_mentioned(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_detect.show_report("local", _report(FakeHost(has_systemd=False)), as_json=False)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0
    assert "no issues on local" in err
    assert "7 probes could not run on local: system:state, unit:nginx.service" in err   # 6 units, 1 socket
