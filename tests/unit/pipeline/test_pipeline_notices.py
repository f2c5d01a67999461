"""Every event of a repair, emitted from its stage: the driver with scripted stages and the shared fake
sandbox (tests/unit/pipeline/fakes.py), a recording emitter in place of the hub."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.config.notify import TroubleshootingPreference
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, Issue, IssueKind, SessionStatus, Severity
from orchestrator.notify.event import Event
from orchestrator.pipeline import driver, reboot
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.notices import RunNotices
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.pipeline.run import run_repair
from orchestrator.pipeline.values import Applied
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.session.store import new_session
from orchestrator.state.transactions import TransactionStore
from orchestrator.targets.spec import parse_target
from orchestrator.transport.fake import FakeTransport
from tests.unit.notify.conftest import Recorder
from tests.unit.pipeline.fakes import Script

APP = Component("app", units=("app.service",), config_paths=("/etc/app",), config_test=("app", "-t"))
ISSUE = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "config does not parse",
              "config:app")
DOWN = Issue("app", IssueKind.UNIT_FAILED, Severity.CRITICAL, "app.service", "failed", "unit:app.service")

Make = Callable[..., tuple[RunContext, Script, Recorder]]


@pytest.fixture
def make(tmp_path: Path, make_settings: Callable[..., Settings]) -> Make:
    def factory(script: Script | None = None, *, troubleshooting: TroubleshootingPreference = "immediate",
                **options: Any) -> tuple[RunContext, Script, Recorder]:
        settings = make_settings(watch=WatchConfig((APP,)))
        script = script or Script(tmp_path)
        transport, recorder = FakeTransport(), Recorder()
        agent = RemoteAgent(transport, timeout=5)
        session = new_session(settings.sessions_dir, "vm:patient")
        notices = RunNotices(recorder, "vm:patient", session.id, session.dir / "report.md", troubleshooting)
        resolved = Resolved.of(RunOptions(**{"assume_yes": True, **options}), settings)
        ctx = RunContext(App(settings), parse_target("vm:patient"), session, transport, agent,
                         Detector(settings.watch, transport, agent), resolved, script.new_sandbox,
                         notices=notices)
        return ctx, script, recorder

    return factory


def repair(ctx: RunContext, script: Script, issue: Issue = ISSUE) -> IssueOutcome:
    return driver.repair_issue(ctx, issue, (), script.stages())


def only(recorder: Recorder, kind: str) -> Event:
    [event] = [e for e in recorder.events if e.kind == kind]
    return event


def test_repaired_after_an_escalation(make: Make) -> None:
    ctx, script, recorder = make()
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "repaired"]
    started, done = recorder.events
    assert (started.target, started.component, started.session_id) == ("vm:patient", "app", ctx.session.id)
    assert started.details["attempt"] == 1 and started.details["probe"] == "config:app"
    assert done.summary == "app: config does not parse: s1 applied and verified on the target"
    assert done.details["strategy"] == "s1" and done.details["txn_id"]


def test_a_restart_in_place_is_no_escalation(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, in_place=True))
    repair(ctx, script, DOWN)
    assert recorder.kinds() == ["repaired"]


def test_not_reproduced(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, reproduced=False, not_reproduced_reason="environment "
                                        "differs: nginx missing"))
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "not_reproduced"]
    assert "environment differs: nginx missing" in recorder.events[-1].summary


def test_not_repaired_carries_the_manual_steps(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, winners=[None]))
    repair(ctx, script)
    event = only(recorder, "not_repaired")
    steps = event.details["manual_steps"]
    assert steps[0] == (f"read the report {ctx.session.dir / 'report.md'} (section Manual steps: what was "
                        "tried and the commands a person would run)")
    assert steps[-1] == "after a change by hand, run `vmrepair detect --target vm:patient`"


def test_a_dry_run_says_how_to_apply_the_validated_fix(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(dry_run=True)
    repair(ctx, script)
    event = only(recorder, "not_repaired")
    assert event.details["dry_run"] is True
    assert event.details["manual_steps"][0] == (f"review the validated fix in {tmp_path / 'pkg'} and apply "
                                                "it with `vmrepair run --target vm:patient`")


def test_a_rollback_then_the_next_strategy(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, winners=["s1", "s2"], applies=["rolled_back", "applied"]))
    assert repair(ctx, script).status is SessionStatus.REPAIRED
    assert recorder.kinds() == ["troubleshooting_started", "rollback", "troubleshooting_started", "repaired"]
    rollback = recorder.events[1]
    assert rollback.details["strategy"] == "s1" and rollback.details["status"] == "rolled_back"
    assert "support_ref" not in rollback.details
    assert recorder.events[2].details["excluded"] == ["s1"] and recorder.events[2].details["attempt"] == 2


def test_a_failed_rollback_is_announced_with_its_support_reference(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, applies=["rollback_failed"]))
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "rollback", "not_repaired"]
    assert recorder.events[1].details["support_ref"].startswith("VMR-")


def test_a_spent_budget_is_announced_once_with_the_manual_steps(make: Make, tmp_path: Path) -> None:
    script = Script(tmp_path, winners=["s1", "s2"], applies=["rolled_back"] * 2)
    ctx, script, recorder = make(script, attempt_budget=2)
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "rollback", "troubleshooting_started", "rollback",
                                "budget_exhausted"]   # the budget event is this issue's not_repaired
    spent = recorder.events[-1]
    assert spent.details["tried"] == ["s1", "s2"]
    assert any("quote support reference VMR-" in step for step in spent.details["manual_steps"])


def test_a_pending_reboot_says_when(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, needs_reboot=True, reboots=["pending"]))
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "pending_reboot"]
    event = recorder.events[-1]
    assert (event.details["policy"], event.details["how"]) == ("prompt",
                                                               "`vmrepair reboot now --target vm:patient`")


def test_a_reboot_verified_in_the_run_is_repaired(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, needs_reboot=True, reboots=["verified"]))
    repair(ctx, script)
    assert recorder.kinds() == ["troubleshooting_started", "repaired"]


def test_the_reboot_stage_gives_the_scheduled_time(make: Make, tmp_path: Path) -> None:
    ctx, _, _ = make(reboot_policy="window")
    store = TransactionStore(ctx.app.state)
    txn = store.create(package_id="p", package_dir="/p", target=str(ctx.spec), component="app",
                       backup_dir="/b", ops_total=1, issue_id=ISSUE.fingerprint, strategy="s",
                       reboot_required=True)
    applied = Applied("applied", txn, VerifyPlan(("config:app",), "snap", "boot-1"), True)
    step = reboot.reboot(ctx, ISSUE, applied, sleep=lambda s: None)
    assert step.when.startswith(("next window ", "now, in window "))


def test_summary_preference_sends_one_notification_per_run(make: Make, tmp_path: Path) -> None:
    ctx, script, recorder = make(Script(tmp_path, winners=["s1", "s2"], applies=["rolled_back", "applied"]),
                                 troubleshooting="summary")
    repair(ctx, script)
    repair(ctx, dataclasses.replace(script, winners=[None]), DOWN)
    assert "troubleshooting_started" not in recorder.kinds()
    assert ctx.notify is ctx.notices
    ctx.notify.finish()
    summary = only(recorder, "troubleshooting_summary")
    assert summary.summary == ("2 issue(s) escalated to a troubleshooting VM: app: repaired; "
                               "app: not_repaired")
    assert [(e["issue"], e["rounds"], e["status"]) for e in summary.details["escalations"]] == [
        (ISSUE.id, 2, "repaired"), (DOWN.id, 1, "not_repaired")]


def test_none_preference_says_nothing_of_troubleshooting(make: Make) -> None:
    ctx, script, recorder = make(troubleshooting="none")
    repair(ctx, script)
    ctx.notify.finish()
    assert recorder.kinds() == ["repaired"]


def test_without_notices_the_context_uses_the_apps_hub(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    transport = FakeTransport()
    agent = RemoteAgent(transport, timeout=5)
    app = App(settings)
    ctx = RunContext(app, parse_target("vm:patient"), new_session(settings.sessions_dir, "vm:patient"),
                     transport, agent, Detector(settings.watch, transport, agent),
                     Resolved.of(RunOptions(), settings), lambda session: None)  # type: ignore[arg-type,return-value]
    assert ctx.notify is ctx.notify and ctx.notify.hub is app.notifier
    ctx.notify.run_failed("connect: target vm:patient is unreachable")
    [record] = [json.loads(line) for line in settings.audit.path.read_text().splitlines()]
    assert (record["event"], record["details"]["summary"]) == ("error", "connect: target vm:patient is "
                                                               "unreachable")


# -- the run around the driver -------------------------------------------------------------------

CONFIG_ONLY = Component("app", units=(), config_paths=("/etc/app",), config_test=("app", "-t"))


def _run_app(make_settings: Callable[..., Settings], handler: Callable[..., tuple[int, bytes, bytes]],
             ) -> tuple[App, Recorder]:
    app, recorder = App(make_settings(watch=WatchConfig((CONFIG_ONLY,), mounts=()))), Recorder()
    app.local = FakeTransport(handler)  # type: ignore[misc]  # the `local` target's transport
    app.notifier = recorder  # type: ignore[assignment]  # the hub, recorded
    return app, recorder


def test_a_run_ends_with_its_troubleshooting_summary(make_settings: Callable[..., Settings],
                                                     tmp_path: Path) -> None:
    def broken(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (1, b"", b"app: bad line 3\n") if argv[:1] == ("app",) else (0, b"", b"")

    app, recorder = _run_app(make_settings, broken)
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    assert recorder.kinds() == ["repaired", "troubleshooting_summary"]
    assert {e.session_id for e in recorder.events} == {outcome.session.id}
    assert recorder.events[-1].details["report"] == str(outcome.session.dir / "report.md")


def test_a_run_that_fails_is_announced_as_an_error(make_settings: Callable[..., Settings]) -> None:
    def hung(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("no answer", argv=list(argv))

    app, recorder = _run_app(make_settings, hung)
    run_repair(app, "local", RunOptions())
    [event] = recorder.events
    assert event.kind == "error" and event.summary.startswith("connect: target local is unreachable")
