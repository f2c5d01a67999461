"""`vmrepair gate UNIT` (exit codes, the journal line, the audit record, on_error) and
`vmrepair watch gate install|remove UNIT` through the CLI's own wiring."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.cli import gate as cli_gate
from orchestrator.cli import watch as cli_watch
from orchestrator.cli.main import main
from orchestrator.config.daemon import AuditSettings
from orchestrator.config.gate import GateSettings
from orchestrator.config.settings import Settings
from orchestrator.gate import Verdict, evaluate
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost, target_agent
from tests.unit.template_watch import template_watch

WATCH = template_watch()
BAD_NGINX = FakeHost(config_tests={"nginx": (1, b"nginx: [emerg] unknown directive\n")})


def on_fake_host(host: FakeHost) -> Callable[[str], Verdict]:
    return lambda unit: evaluate(WATCH, unit, host.transport(), target_agent())


def run_gate(settings: Settings, unit: str, evaluate_unit: Callable[[str], Verdict],
             ) -> tuple[cli_gate.GateOutcome, str, MemoryAuditSink]:
    stderr = io.StringIO()
    audit = MemoryAuditSink()
    outcome = cli_gate.gate_command(unit, settings, evaluate=evaluate_unit, audit=audit, stderr=stderr)
    return outcome, stderr.getvalue(), audit


def test_parsers() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_gate.register(sub)
    cli_watch.register(sub)
    gate = parser.parse_args(["gate", "nginx.service"])
    assert (gate.unit, gate.handler, gate.settings_free) == ("nginx.service", cli_gate.cmd_gate, True)
    assert parser.parse_args(["watch", "gate", "install", "nginx"]).handler == cli_gate.cmd_install
    assert parser.parse_args(["watch", "gate", "remove", "nginx"]).handler == cli_gate.cmd_remove
    with pytest.raises(SystemExit):
        parser.parse_args(["watch", "gate"])


def test_healthy_component_exits_0_with_one_line(settings: Settings) -> None:
    outcome, err, audit = run_gate(settings, "nginx.service", on_fake_host(FakeHost()))
    assert outcome == cli_gate.GateOutcome(0, is_abandoned=False)
    assert err.startswith("vmrepair gate: allowing the start of nginx.service: 4 pre-start check(s) of nginx "
                          "pass (")
    assert err.count("\n") == 1
    assert [(r["event"], r["component"], r["status"]) for r in audit.records] == [
        ("gate_allowed", "nginx", "allowed")]


def test_failed_check_exits_1_with_the_reason_and_a_durable_record(settings: Settings) -> None:
    outcome, err, audit = run_gate(settings, "nginx", on_fake_host(BAD_NGINX))
    assert outcome.exit_code == 1
    assert err.startswith("vmrepair gate: refusing the start of nginx.service: config:nginx: nginx: config "
                          "test `nginx -t` exited 1 (")
    assert err.count("\n") == 1
    (record,) = audit.records
    assert (record["event"], record["status"], record["durable"]) == ("gate_refused", "refused", True)
    assert record["details"]["failed"][0]["probe"] == "config:nginx"


def _buggy(unit: str) -> Verdict:
    raise ZeroDivisionError("division by zero")


def test_own_failure_allows_by_default(settings: Settings) -> None:
    outcome, err, audit = run_gate(settings, "nginx.service", _buggy)
    assert outcome.exit_code == 0
    assert ("allowing the start of nginx.service: the gate failed, allowing the start "
            "(gate.on_error: allow): ZeroDivisionError: division by zero") in err
    assert audit.records[0]["event"] == "gate_allowed"
    assert audit.records[0]["details"]["error"] == "ZeroDivisionError: division by zero"


def test_own_failure_refuses_with_2_under_on_error_refuse(settings: Settings) -> None:
    strict = dataclasses.replace(settings, gate=GateSettings(on_error="refuse"))
    outcome, err, audit = run_gate(strict, "nginx.service", _buggy)
    assert outcome.exit_code == 2
    assert ("refusing the start of nginx.service: the gate failed, refusing the start "
            "(gate.on_error: refuse)") in err
    assert audit.records[0]["event"] == "gate_refused"


def test_deadline_comes_from_the_settings(settings: Settings) -> None:
    quick = dataclasses.replace(settings, gate=GateSettings(deadline_s=0.05))
    release = threading.Event()

    def hang(unit: str) -> Verdict:
        release.wait(5)
        return _buggy(unit)

    try:
        outcome, err, _ = run_gate(quick, "nginx.service", hang)
    finally:
        release.set()
    assert outcome == cli_gate.GateOutcome(0, is_abandoned=True)
    assert "no decision within the 0.05 s deadline" in err


def test_a_name_that_is_no_service_is_the_gates_own_failure(settings: Settings) -> None:
    called: list[str] = []

    def record(unit: str) -> Verdict:
        called.append(unit)
        return _buggy(unit)

    outcome, err, _ = run_gate(settings, "syslog.socket", record)
    assert outcome.exit_code == 0
    assert called == []
    assert "syslog.socket is not a service" in err


def test_unreadable_config_allows_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("gate: {on_error: sometimes}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(tmp_path / "state"))
    assert main(["gate", "nginx.service"]) == 0
    err = capsys.readouterr().err
    assert "vmrepair gate: allowing the start of nginx.service: the gate failed, allowing the start" in err
    assert "settings: " in err


def test_install_and_remove_write_where_the_settings_say_and_are_audited(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    settings = make_settings(audit=AuditSettings(path=audit_path),
                             gate=GateSettings(unit_dir=tmp_path / "system",
                                               command=Path("/opt/vmrepair/bin/vmrepair")))
    app = App(settings)
    transport = FakeTransport()
    path = cli_gate.install_on(app, transport, "nginx")
    assert path == tmp_path / "system" / "nginx.service.d" / "50-vmrepair-gate.conf"
    assert "ExecStartPre=+/opt/vmrepair/bin/vmrepair gate nginx.service\n" in path.read_text()
    assert cli_gate.remove_on(app, transport, "nginx.service") == path
    assert cli_gate.remove_on(app, transport, "nginx.service") is None
    assert transport.argvs == [("systemctl", "daemon-reload")] * 2
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(r["event"], r["component"], r["status"]) for r in records] == [
        ("gate_installed", "nginx.service", "ok"), ("gate_removed", "nginx.service", "ok")]
