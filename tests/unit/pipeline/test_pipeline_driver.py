"""The driver, branch by branch, without a VM: scripted stages, a fake sandbox, and the real attempt
budget, transaction store and session evidence."""

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
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.errors import PipelineError
from orchestrator.model import REPORT_ONLY, Component, Issue, IssueKind, SessionStatus, Severity
from orchestrator.pipeline import driver, triage
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.session.store import new_session
from orchestrator.state.transactions import OPERATOR_ROLLBACK, TransactionStore
from orchestrator.targets.spec import parse_target
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import Script
from tests.unit.systemd.fakes import Clock, FakeSystemd

APP = Component("app", units=("app.service",), config_paths=("/etc/app",), config_test=("app", "-t"))
ISSUE = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "config does not parse",
              "config:app")
DOWN = Issue("app", IssueKind.UNIT_FAILED, Severity.CRITICAL, "app.service", "failed", "unit:app.service")

Make = Callable[..., tuple[RunContext, Script]]


@pytest.fixture
def make(tmp_path: Path, make_settings: Callable[..., Settings]) -> Make:
    def factory(script: Script | None = None, **options: object) -> tuple[RunContext, Script]:
        settings = make_settings(watch=WatchConfig((APP,)))
        app = App(settings)
        script = script or Script(tmp_path)
        transport = FakeTransport()
        agent = RemoteAgent(transport, timeout=5)
        resolved = Resolved.of(RunOptions(**{"assume_yes": True, **options}), settings)  # type: ignore[arg-type]
        ctx = RunContext(app, parse_target("vm:patient"), new_session(settings.sessions_dir, "vm:patient"),
                         transport, agent, Detector(settings.watch, transport, agent), resolved,
                         script.new_sandbox)
        return ctx, script

    return factory


def repair(ctx: RunContext, script: Script, issue: Issue = ISSUE) -> IssueOutcome:
    return driver.repair_issue(ctx, issue, (), script.stages())


def test_restart_in_place_fixes_without_a_sandbox(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, in_place=True))
    outcome = repair(ctx, script, DOWN)
    assert outcome.status is SessionStatus.REPAIRED and outcome.in_place
    assert outcome.as_dict()["in_place"] is True
    assert script.calls == ["triage", "in-place"] and script.sandboxes == []


@pytest.mark.parametrize(("kind", "component"), [
    (IssueKind.KERNEL_FAULT, "host"), (IssueKind.MEMORY_PRESSURE, "host"),
    (IssueKind.SYSTEM_DEGRADED, "host"), (IssueKind.PERMISSIONS, "host")])
def test_host_wide_state_is_reported_never_sent_to_a_sandbox(
    make: Make, tmp_path: Path, kind: IssueKind, component: str
) -> None:
    ctx, script = make(Script(tmp_path, in_place=True))
    issue = Issue(component, kind, Severity.WARNING, "host", "tainted", probe="kernel:taint")
    outcome = repair(ctx, script, issue)
    assert outcome.status is SessionStatus.NOT_REPAIRED
    assert outcome.summary.startswith("reported, not repaired")
    assert script.calls == [] and script.sandboxes == []


def test_a_drift_marked_report_only_says_its_own_reason_and_never_reaches_a_sandbox(
        make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, in_place=True))
    issue = Issue("web", IssueKind.PERMISSIONS, Severity.WARNING, "web", "conf.d owned by appsvc",
                  probe="pkgmeta:web", evidence={REPORT_ONLY: "may be intended"})
    outcome = repair(ctx, script, issue)
    assert (outcome.status, outcome.summary) == (SessionStatus.NOT_REPAIRED,
                                                 "reported, not repaired: may be intended")
    assert outcome.report_only and outcome.as_dict()["report_only"] is True
    assert script.calls == [] and script.sandboxes == []


def test_a_failed_restart_escalates_to_the_sandbox(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, in_place=False))
    outcome = repair(ctx, script, DOWN)
    assert outcome.status is SessionStatus.REPAIRED and not outcome.in_place
    assert script.calls[:3] == ["triage", "in-place", "capture"]


def test_dry_run_never_restarts_in_place_and_applies_nothing(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, in_place=True), dry_run=True)
    outcome = repair(ctx, script, DOWN)
    assert outcome.status is SessionStatus.NOT_REPAIRED and outcome.dry_run
    assert "in-place" not in script.calls and "apply" not in script.calls
    assert outcome.summary.startswith("dry run: validated fix (s1, 1 operations) not applied")
    assert outcome.package == str(tmp_path / "pkg")


def test_the_whole_sequence_in_order_and_the_sandbox_is_destroyed(make: Make, tmp_path: Path) -> None:
    ctx, script = make()
    outcome = repair(ctx, script)
    assert script.calls == ["triage", "capture", "sandbox", "reproduce", "diagnose", "attempts", "package",
                            "apply"]
    assert outcome.status is SessionStatus.REPAIRED and outcome.strategy == "s1" and outcome.txn
    assert outcome.summary == "s1 applied and verified on the target"
    [sandbox] = script.sandboxes
    assert sandbox.calls == ["start", "import", "destroy"]


def test_not_reproduced_applies_nothing(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, reproduced=False))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.NOT_REPRODUCED
    assert outcome.summary == "config:app passes in the troubleshooting VM; nothing applied"
    assert "diagnose" not in script.calls and script.sandboxes[0].calls[-1] == "destroy"


def test_an_environment_that_differs_is_the_reason_given(make: Make, tmp_path: Path) -> None:
    why = "environment differs: unit app.service exists on the target but not in the VM"
    ctx, script = make(Script(tmp_path, reproduced=False, not_reproduced_reason=why))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.NOT_REPRODUCED
    assert outcome.summary == f"{why}; nothing applied"


def test_no_strategy_validates(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, winners=[None]))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.NOT_REPAIRED and not outcome.is_retryable
    assert outcome.summary == "no strategy passed validation in the troubleshooting VM; nothing applied"
    assert "package" not in script.calls


def test_validated_but_not_packageable(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, refuse="symlink /etc/app/x: not a regular file"))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.NOT_REPAIRED and outcome.strategy == "s1"
    assert "s1 validated in the VM but cannot be packaged safely: symlink" in outcome.summary
    assert "apply" not in script.calls


def test_a_package_with_no_operations_is_not_applied(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, operations=0))
    outcome = repair(ctx, script)
    assert outcome.summary == "strategy s1 validated but changed nothing applicable"
    assert "apply" not in script.calls


def test_declined_confirmation_applies_nothing(make: Make, tmp_path: Path) -> None:
    asked: list[str] = []
    ctx, script = make(assume_yes=False, confirm=lambda q: asked.append(q) or False)
    outcome = repair(ctx, script)
    assert outcome.summary == "operator declined; nothing applied" and "apply" not in script.calls
    assert asked == ["Apply 1 operation(s) of strategy s1 to vm:patient? "]


def test_no_confirm_callback_means_no(make: Make, tmp_path: Path) -> None:
    ctx, script = make(assume_yes=False)
    assert repair(ctx, script).summary == "operator declined; nothing applied"


def test_apply_aborted_on_a_changed_target_is_not_retried(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, winners=["s1", "s2"], applies=["aborted", "applied"]))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.NOT_REPAIRED and not outcome.is_retryable
    assert outcome.summary.startswith("apply aborted; see ") and outcome.support_ref
    assert script.calls.count("apply") == 1


def test_rolled_back_apply_tries_the_next_strategy(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, winners=["s1", "s2"], applies=["rolled_back", "applied"]))
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.REPAIRED and outcome.strategy == "s2"
    assert script.excluded == [[], ["s1"]]
    assert [a["strategy"] for a in outcome.as_dict()["attempts"]] == ["s1", "s2"]
    assert outcome.attempts[0].summary.startswith("apply rolled_back: target restored from")
    assert len(script.sandboxes) == 2 and all(s.calls[-1] == "destroy" for s in script.sandboxes)


def test_failed_verification_after_the_boot_rolls_back_and_tries_the_next(make: Make, tmp_path: Path) -> None:
    script = Script(tmp_path, winners=["s1", "s2"], applies=["applied", "applied"], needs_reboot=True,
                    snapshot="vmrepair-pre-x", reboots=["rolled_back", "verified"])
    ctx, script = make(script, reboot_policy="automatic")
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.REPAIRED and outcome.strategy == "s2"
    assert outcome.summary == "s2 applied, target rebooted and verified after the boot"
    first = outcome.attempts[0]
    assert first.status is SessionStatus.NOT_REPAIRED and first.restored
    assert first.summary == "s1 failed after the reboot (rolled_back): scripted rolled_back"
    # The sandbox goes before the reboot: the target's boot needs the CPU.
    assert script.sandboxes[0].calls[-1] == "destroy"
    assert script.calls.index("reboot") > script.calls.index("apply")
    assert script.dropped == []          # the verified reboot commits; the executor drops the snapshot


def test_a_reboot_that_is_not_restored_is_an_error_and_not_retried(make: Make, tmp_path: Path) -> None:
    script = Script(tmp_path, winners=["s1", "s2"], applies=["applied"], needs_reboot=True,
                    reboots=["rollback_failed"])
    ctx, script = make(script)
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.ERROR and not outcome.is_retryable
    assert script.calls.count("apply") == 1


def test_pending_reboot(make: Make, tmp_path: Path) -> None:
    script = Script(tmp_path, needs_reboot=True, reboots=["pending"])
    ctx, script = make(script)
    outcome = repair(ctx, script)
    assert outcome.status is SessionStatus.PENDING_REBOOT and outcome.policy == "prompt"
    assert "reboot pending (prompt): `vmrepair reboot now --target vm:patient`" in outcome.summary


def test_a_fallback_snapshot_is_dropped_when_no_reboot_follows(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, applies=["rolled_back"], snapshot="vmrepair-pre-x",
                              winners=["s1", None]))
    repair(ctx, script)
    assert script.dropped == ["vmrepair-pre-x"]


def test_spent_budget_leaves_the_host_degraded_with_a_support_reference(make: Make, tmp_path: Path) -> None:
    script = Script(tmp_path, winners=["s1", "s2", "s3"], applies=["rolled_back"] * 3)
    ctx, script = make(script, attempt_budget=3)
    outcome = repair(ctx, script)
    detail = outcome.as_dict()
    assert detail["status"] == SessionStatus.NOT_REPAIRED and detail["degraded"] is True
    assert script.excluded == [[], ["s1"], ["s1", "s2"]]     # never the same strategy twice
    assert detail["support_ref"].startswith("VMR-")
    assert "attempt budget (3) spent: s1, s2, s3 rolled back" in detail["summary"]
    assert any("quote support reference" in step for step in detail["manual_steps"])
    assert [a["strategy"] for a in detail["attempts"]] == ["s1", "s2", "s3"]
    assert "budget_exhausted" in Path(ctx.app.settings.audit.path).read_text()


def _rolled_back(ctx: RunContext, strategy: str, *, operator: bool = False) -> None:
    store = TransactionStore(ctx.app.state)
    txn = store.create(package_id="p", package_dir="/p", target=str(ctx.spec), component="app",
                       backup_dir="/b", ops_total=1, issue_id=ISSUE.fingerprint, strategy=strategy)
    if operator:
        store.step(txn.id, "committed", state="committed")
        store.step(txn.id, OPERATOR_ROLLBACK, state="rolling_back")
        store.step(txn.id, "operator_rolled_back", state="rolled_back")
    else:
        store.step(txn.id, "rolled_back", state="rolled_back")


def test_failures_from_an_earlier_run_count_against_the_budget(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path, winners=["s3"]), attempt_budget=3)
    _rolled_back(ctx, "s1")
    _rolled_back(ctx, "s2")
    assert repair(ctx, script).status is SessionStatus.REPAIRED
    assert script.excluded == [["s1", "s2"]]


def test_a_budget_spent_before_this_run_starts_no_sandbox(make: Make, tmp_path: Path) -> None:
    ctx, script = make(attempt_budget=1)
    _rolled_back(ctx, "s1")
    outcome = repair(ctx, script)
    assert outcome.degraded and script.sandboxes == []


def test_an_operator_rollback_does_not_count_as_a_failed_strategy(make: Make, tmp_path: Path) -> None:
    ctx, script = make()
    _rolled_back(ctx, "s1", operator=True)
    repair(ctx, script)
    assert script.excluded == [[]]


def test_a_failing_stage_still_destroys_the_sandbox(make: Make, tmp_path: Path) -> None:
    ctx, script = make()

    def broken(*args: object, **kwargs: object) -> None:
        raise PipelineError("the sandbox stopped answering", stage="reproduce")

    stages = dataclasses.replace(script.stages(), reproduce=broken)
    with pytest.raises(PipelineError, match="stopped answering"):
        driver.repair_issue(ctx, ISSUE, (), stages)
    assert script.sandboxes[0].calls[-1] == "destroy"


def test_an_unknown_component_is_a_triage_error(make: Make, tmp_path: Path) -> None:
    ctx, script = make()
    stranger = dataclasses.replace(ISSUE, component="ghost")
    with pytest.raises(PipelineError, match="names unknown component 'ghost'"):
        repair(ctx, script, stranger)


def test_a_system_directory_goes_through_a_sandbox_on_the_host_component(make: Make, tmp_path: Path) -> None:
    ctx, script = make(Script(tmp_path))
    tmp = Issue("host", IssueKind.PERMISSIONS, Severity.CRITICAL, "/tmp", "/tmp: not sticky", "sysdir:/tmp")
    outcome = repair(ctx, script, tmp)
    assert outcome.status is SessionStatus.REPAIRED, outcome.summary
    assert script.calls[:2] == ["triage", "capture"] and len(script.sandboxes) == 1


def test_a_system_files_mode_goes_through_a_sandbox_on_a_host_component_of_that_file_only(
    make: Make, tmp_path: Path
) -> None:
    ctx, script = make(Script(tmp_path))
    seen: list[Any] = []
    capture = script.capture

    def recording(ctx: RunContext, issue: Issue, related: Any, components: Any) -> Any:
        seen.extend(components)
        return capture(ctx, issue, related, components)

    stages = dataclasses.replace(script.stages(), capture=recording)
    shadow = Issue("host", IssueKind.PERMISSIONS, Severity.CRITICAL, "/etc/shadow",
                   "/etc/shadow: readable or writable by others", "sysdir:/etc/shadow")
    outcome = driver.repair_issue(ctx, shadow, (), stages)
    assert outcome.status is SessionStatus.REPAIRED, outcome.summary
    (host,) = seen
    # Its only path is a meta path: the capture packs nothing (no content), it takes the entry.
    assert (host.name, host.writable_paths, host.all_paths) == ("host", ("/etc/shadow",), ())


def test_a_system_file_the_vm_lacks_ends_not_reproduced_and_says_so(make: Make, tmp_path: Path) -> None:
    reason = "the troubleshooting VM has no /etc/sudoers (only a file's mode and owner are mirrored)"
    ctx, script = make(Script(tmp_path, reproduced=False, not_reproduced_reason=reason))
    sudoers = Issue("host", IssueKind.PERMISSIONS, Severity.CRITICAL, "/etc/sudoers",
                    "/etc/sudoers: world writable", "sysdir:/etc/sudoers")
    outcome = repair(ctx, script, sudoers)
    assert outcome.status is SessionStatus.NOT_REPRODUCED
    assert outcome.summary == f"{reason}; nothing applied"
    assert "apply" not in script.calls


def test_a_hung_restart_in_place_escalates_to_a_troubleshooting_vm_instead_of_ending_error(
    make: Make, tmp_path: Path
) -> None:
    """Issue 16: the real in-place stage against a unit whose stop hangs in stop-sigterm; the unit is
    killed through systemd at the deadline and the issue goes to the sandbox like any failed restart."""
    ctx, script = make(Script(tmp_path, in_place=False))
    fake, clock = FakeSystemd(hang={"app.service"}), Clock()
    ctx = dataclasses.replace(ctx, transport=FakeTransport(fake))
    stages = dataclasses.replace(script.stages(), in_place=lambda c, i, comp: triage.in_place(
        c, i, comp, sleep=clock.sleep, clock=clock))
    outcome = driver.repair_issue(ctx, DOWN, (), stages)
    assert outcome.status is SessionStatus.REPAIRED and not outcome.in_place
    assert script.calls[:2] == ["triage", "capture"]
    assert fake.killed == ["app.service"]
    assert clock.now - 1000.0 >= ctx.app.settings.health.restart_deadline_s
    evidence = json.loads((Path(ctx.session.dir) / f"{Evidence.IN_PLACE.file('app')}.json").read_text())
    assert evidence[0]["restart"] == "hung"
    [stage] = [r for r in ctx.session.timeline if r.name == Stage.IN_PLACE]
    assert stage.status == "ok" and stage.detail == "restart hung (unit killed); escalating"
