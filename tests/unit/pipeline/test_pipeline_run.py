"""run_repair around the driver: connect, detect, healthy, the early sandbox, errors as a status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.errors import CommandTimeoutError
from orchestrator.metrics.detections import remember_detection
from orchestrator.model import Component, Issue, IssueKind, SessionStatus, Severity
from orchestrator.pipeline.run import RunOptions, early_reason, run_repair
from orchestrator.session.history import last_run_escalated
from orchestrator.targets.spec import parse_target
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import Script

APP = Component("app", units=(), config_paths=("/etc/app",), config_test=("app", "-t"))


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    return App(make_settings(watch=WatchConfig((APP,), mounts=())))


def _local(app: App, config_ok: bool) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:1] == ("app",):
            return (0, b"ok\n", b"") if config_ok else (1, b"", b"app: bad line 3\n")
        return 0, b"", b""

    transport = FakeTransport(handler)
    app.local = transport  # type: ignore[misc]  # the `local` target's transport, for this test
    return transport


def test_healthy_target_needs_no_sandbox(app: App, tmp_path: Path) -> None:
    _local(app, config_ok=True)
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(), sandbox=script.new_sandbox, stages=script.stages())
    assert outcome.status is SessionStatus.HEALTHY and outcome.exit_code == 0
    assert outcome.summary == "all watched components pass their probes"
    assert script.sandboxes == [] and script.calls == []


def test_an_issue_goes_through_the_driver_and_into_the_session(app: App, tmp_path: Path) -> None:
    _local(app, config_ok=False)
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    assert outcome.status is SessionStatus.REPAIRED and outcome.exit_code == 0
    meta = json.loads((outcome.session.dir / "session.json").read_text())
    assert meta["components"] == outcome.details
    assert meta["components"][0]["strategy"] == "s1"
    assert outcome.summary.startswith("app: repaired (s1 applied")


def test_after_an_escalated_run_the_next_starts_its_sandbox_before_detection(
        app: App, tmp_path: Path) -> None:
    _local(app, config_ok=False)
    first = Script(tmp_path)
    run_repair(app, "local", RunOptions(assume_yes=True), sandbox=first.new_sandbox, stages=first.stages())
    assert last_run_escalated(app.settings.sessions_dir, "local")
    second = Script(tmp_path)
    run_repair(app, "local", RunOptions(assume_yes=True), sandbox=second.new_sandbox, stages=second.stages())
    [sandbox] = second.sandboxes           # the early one was used by the round, not a second one
    assert sandbox.calls == ["start", "import", "destroy"]


def test_open_issues_of_the_last_detection_start_the_sandbox_before_detection(
        app: App, tmp_path: Path) -> None:
    """The daemon (or `vmrepair detect`) saw the issue first: the run it leads to boots its VM while
    its own detection runs. A record with nothing open, or none at all, waits for detection."""
    _local(app, config_ok=False)
    state = app.settings.state_dir
    remember_detection(state, "local", "local", [])
    assert early_reason(app, parse_target("local")) == ""
    issue = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "bad", probe="config:app")
    remember_detection(state, "local", "local", [issue])
    assert early_reason(app, parse_target("local")).endswith("left 1 issue(s) open")
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    [sandbox] = script.sandboxes
    assert sandbox.calls == ["start", "import", "destroy"]
    events = (outcome.session.dir / "evidence.jsonl").read_text()
    assert "started_early" in events and "left 1 issue(s) open" in events


def test_an_early_sandbox_is_destroyed_when_the_target_is_healthy(app: App, tmp_path: Path) -> None:
    _local(app, config_ok=False)
    first = Script(tmp_path)
    run_repair(app, "local", RunOptions(assume_yes=True), sandbox=first.new_sandbox, stages=first.stages())
    _local(app, config_ok=True)
    second = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(), sandbox=second.new_sandbox, stages=second.stages())
    assert outcome.status is SessionStatus.HEALTHY
    assert [s.calls for s in second.sandboxes] == [["start", "destroy"]]


def test_a_run_fixed_in_place_does_not_count_as_escalated(app: App, tmp_path: Path) -> None:
    _local(app, config_ok=False)
    script = Script(tmp_path, in_place=True)
    run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox, stages=script.stages())
    assert not last_run_escalated(app.settings.sessions_dir, "local")


def test_an_unreachable_target_is_an_error_naming_the_stage(app: App, tmp_path: Path) -> None:
    def hung(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("no answer", argv=list(argv))

    app.local = FakeTransport(hung)  # type: ignore[misc]
    outcome = run_repair(app, "local", RunOptions())
    assert outcome.status is SessionStatus.ERROR and outcome.exit_code == 12
    assert outcome.summary.startswith("connect: target local is unreachable")


def test_history_ignores_fifos_and_garbage(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    for name, body in (("20260101T000000Z-aaaaaa", None), ("20260101T000001Z-bbbbbb", b"[1,2]"),
                       ("20260101T000002Z-cccccc", b"{not json")):
        (sessions / name).mkdir(parents=True)
        if body is None:
            import os
            os.mkfifo(sessions / name / "session.json")
        else:
            (sessions / name / "session.json").write_bytes(body)
    assert last_run_escalated(sessions, "local") is False


def test_report_only_issues_are_probed_again_after_another_repair() -> None:
    from orchestrator.model import Issue, IssueKind, ProbeResult, SessionStatus, Severity
    from orchestrator.pipeline.outcome import IssueOutcome
    from orchestrator.pipeline.run import _recheck_reported

    degraded = Issue("host", IssueKind.SYSTEM_DEGRADED, Severity.WARNING, "system", "degraded",
                     probe="system:state")
    tainted = Issue("host", IssueKind.KERNEL_FAULT, Severity.WARNING, "kernel", "W", probe="kernel:taint")
    fixed = Issue("app", IssueKind.UNIT_FAILED, Severity.CRITICAL, "app.service", "failed",
                  "unit:app.service")

    class Probes:
        def run_probe(self, name: str) -> ProbeResult:
            return ProbeResult(name, "host", name == "system:state", IssueKind.SYSTEM_DEGRADED,
                               Severity.INFO, "x", "x")

    reported = [IssueOutcome(degraded, SessionStatus.NOT_REPAIRED, "reported"),
                IssueOutcome(tainted, SessionStatus.NOT_REPAIRED, "reported")]
    repaired = IssueOutcome(fixed, SessionStatus.REPAIRED, "restarted")
    after = _recheck_reported(Probes(), [repaired, *reported])  # type: ignore[arg-type]
    assert [o.status for o in after] == [SessionStatus.REPAIRED, SessionStatus.REPAIRED,
                                         SessionStatus.NOT_REPAIRED]
    assert after[1].summary == "cleared once the other issues were repaired"
    # Nothing repaired: nothing is probed again.
    assert _recheck_reported(Probes(), reported) == reported  # type: ignore[arg-type]


def test_the_run_status_is_that_of_its_repairs_not_of_reported_state() -> None:
    from orchestrator.model import Issue, IssueKind, SessionStatus, Severity
    from orchestrator.pipeline.outcome import IssueOutcome
    from orchestrator.pipeline.run import run_status

    degraded = IssueOutcome(Issue("host", IssueKind.SYSTEM_DEGRADED, Severity.WARNING, "systemd", "degraded",
                                  probe="system:state"), SessionStatus.NOT_REPAIRED, "reported")
    app = IssueOutcome(Issue("apache2", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "x", "bad",
                             probe="config:apache2"), SessionStatus.NOT_REPRODUCED, "environment differs")
    assert run_status([app, degraded]) is SessionStatus.NOT_REPRODUCED
    assert run_status([degraded]) is SessionStatus.NOT_REPAIRED


def test_a_failure_no_restart_can_fix_boots_the_sandbox_while_detection_runs(
        app: App, tmp_path: Path) -> None:
    """No history on the target: the first failed config test of the round starts the VM, before the
    detect stage ends; the round then uses that VM (one sandbox)."""
    _local(app, config_ok=False)
    assert early_reason(app, parse_target("local")) == ""
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    [sandbox] = script.sandboxes
    assert sandbox.calls == ["start", "import", "destroy"]
    events = [json.loads(line) for line in (outcome.session.dir / "evidence.jsonl").read_text().splitlines()]
    early = next(i for i, e in enumerate(events) if e["event"] == "started_early")
    detected = next(i for i, e in enumerate(events) if e["stage"] == "detect" and e["event"] == "finished")
    assert early < detected
    assert events[early]["reason"].startswith("detection found config:app failing")
