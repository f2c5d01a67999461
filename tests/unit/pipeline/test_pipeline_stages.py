"""The real stage functions (not the driver) without a VM: attempts against a fake sandbox whose
guest is a FakeTransport, the package stage's refusals, and the reboot stage's policy decisions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.agent.api import Manifest
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.facts.compare import Differences
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.pipeline import attempts, package, reboot
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.reproduce import reproduce
from orchestrator.pipeline.values import Applied, RebootEnd, Refused, Reproduction, Winner, Workbench
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.sandbox.protocol import ImportReport
from orchestrator.state.outcomes import STAGE_VM, OutcomeStore
from orchestrator.state.transactions import TransactionStore
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import FakeSandbox, empty_capture, run_context

APP = Component("app", config_paths=("/etc/app",), config_test=("app", "-t"))
ISSUE = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "bad config", "config:app")
PLAYBOOK = """
name: app-config
description: the app's config
applies_to: {components: [app], kinds: [config_invalid]}
diagnostics:
  - {name: test, run: [app, -t], timeout_s: 10}
rules:
  - {when: {diagnostic: test, matches: 'bad line'}, cause: config_invalid, confidence: 0.9}
strategies:
  - name: app-first
    description: tried first, its step fails
    for_causes: [config_invalid]
    effectiveness: 0.9
    steps:
      - run: {argv: [app, --fix-one], timeout_s: 10}
  - name: app-second
    description: tried next, repairs
    for_causes: [config_invalid]
    effectiveness: 0.5
    steps:
      - run: {argv: [app, --fix-two], timeout_s: 10}
"""


class Guest:
    """The sandbox's guest: the app's config is bad until ``app --fix-two`` runs."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        line = " ".join(argv)
        if "--fix-one" in line:
            return 1, b"", b"cannot\n"
        if "--fix-two" in line:
            self.fixed = True
            return 0, b"", b""
        if "app -t" in line:
            return (0, b"ok\n", b"") if self.fixed else (1, b"", b"bad line 3\n")
        return 0, b"", b""


@pytest.fixture
def ctx(tmp_path: Path, make_settings: Callable[..., Settings]) -> RunContext:
    books = tmp_path / "books"
    books.mkdir()
    (books / "app.yaml").write_text(PLAYBOOK)
    return run_context(make_settings(watch=WatchConfig((APP,), mounts=()), playbooks_dir=books))


def _workbench(ctx: RunContext, tmp_path: Path, guest: Guest) -> tuple[Workbench, FakeSandbox]:
    sandbox = FakeSandbox()
    sandbox._transport = FakeTransport(guest)
    probes = Detector(ctx.app.settings.watch, sandbox.transport, sandbox.agent)
    return Workbench(sandbox, probes, empty_capture(tmp_path), (APP,), ImportReport(None, None)), sandbox


def test_attempts_revert_after_a_failed_step_and_return_the_validated_winner(
        ctx: RunContext, tmp_path: Path) -> None:
    guest = Guest()
    work, sandbox = _workbench(ctx, tmp_path, guest)
    diagnosed = attempts.diagnose(ctx, work, ISSUE, frozenset())
    assert diagnosed.diagnosis.cause == "config_invalid"
    assert [r.name for r in diagnosed.ranked] == ["app-first", "app-second"]
    assert sandbox.calls == ["snapshot"]     # taken while the read-only diagnostics ran
    winner = attempts.run_attempts(ctx, work, ISSUE, diagnosed)
    assert winner is not None and winner.strategy == "app-second" and winner.validation.passed
    assert sandbox.calls == ["snapshot", "revert"]          # reverted once, after app-first
    records = json.loads((ctx.session.dir / "attempts-app.json").read_text())
    assert [(r["strategy"], r["outcome"]) for r in records] == [("app-first", "failed"),
                                                               ("app-second", "validated")]


def test_attempts_are_recorded_for_the_faults_signature_and_rank_the_next_diagnosis(
        ctx: RunContext, tmp_path: Path) -> None:
    work, _ = _workbench(ctx, tmp_path, Guest())
    diagnosed = attempts.diagnose(ctx, work, ISSUE, frozenset())
    signature = diagnosed.signature
    assert signature is not None and signature.label == "app / config_invalid / config_invalid"
    attempts.run_attempts(ctx, work, ISSUE, diagnosed)
    history = OutcomeStore(ctx.app.state).load_for(signature)
    assert {name: r.stage(STAGE_VM) for name, r in history.items()} == {"app-first": (0, 1),
                                                                        "app-second": (1, 1)}
    # The next diagnosis of the same fault ranks with that record, and says so in the diagnosis file.
    again = attempts.diagnose(ctx, _workbench(ctx, tmp_path, Guest())[0], ISSUE, frozenset())
    # One outcome each does not outweigh the playbook (0.9 vs 0.5 effectiveness): it moves the means.
    assert [(r.name, r.success_rate) for r in again.ranked] == [("app-first", pytest.approx(2.8 / 5)),
                                                                ("app-second", pytest.approx(3 / 5))]
    written = json.loads((ctx.session.dir / "diagnosis-app.json").read_text())
    assert written["signature"]["fine"] == signature.fine
    assert [(r["strategy"], r["why"]["level"], r["why"]["tries"]) for r in written["ranking"]] == \
        [("app-first", "fine", 1), ("app-second", "fine", 1)]
    assert written["concordance"] == [
        {"strategy": "app-first", "vm": [0, 1], "target": [0, 0], "reboot": [0, 0]},
        {"strategy": "app-second", "vm": [1, 1], "target": [0, 0], "reboot": [0, 0]}]


def test_excluded_strategies_are_not_ranked(ctx: RunContext, tmp_path: Path) -> None:
    work, _ = _workbench(ctx, tmp_path, Guest())
    diagnosed = attempts.diagnose(ctx, work, ISSUE, frozenset({"app-first", "app-second"}))
    assert diagnosed.ranked == ()
    assert attempts.run_attempts(ctx, work, ISSUE, diagnosed) is None


def _winner(**changes: object) -> Winner:
    base = Winner("s", "pb", (), False, SimpleNamespace(as_dict=dict), SimpleNamespace(as_dict=dict),  # type: ignore[arg-type]
                  Manifest((), ()))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_winner_that_changed_nothing_packages_to_no_operations(ctx: RunContext, tmp_path: Path) -> None:
    work, _ = _workbench(ctx, tmp_path, Guest())
    built = package.build(ctx, work, ISSUE, _winner())
    assert not isinstance(built, Refused) and built.package.operations == ()


def test_a_boot_critical_change_not_proven_by_a_boot_is_refused(ctx: RunContext, tmp_path: Path) -> None:
    work, _ = _workbench(ctx, tmp_path, Guest())
    built = package.build(ctx, work, ISSUE, _winner(reboot_required=True, rebooted=False))
    assert isinstance(built, Refused) and "did not include a reboot" in built.reason


def _applied(ctx: RunContext, snapshot: str | None) -> Applied:
    store = TransactionStore(ctx.app.state)
    txn = store.create(package_id="p", package_dir="/p", target=str(ctx.spec), component="app",
                       backup_dir="/b", ops_total=1, issue_id=ISSUE.fingerprint, strategy="s",
                       reboot_required=True)
    return Applied("applied", txn, VerifyPlan(("config:app",), snapshot, "boot-1"), True)


def test_automatic_without_a_boot_fallback_waits_for_the_operator(ctx: RunContext) -> None:
    ctx = dataclasses.replace(ctx, options=dataclasses.replace(ctx.options, reboot_policy="automatic"))
    step = reboot.reboot(ctx, ISSUE, _applied(ctx, snapshot=None), sleep=lambda s: None)
    assert step.end is RebootEnd.PENDING and step.policy == "prompt"
    assert step.note and "no boot fallback" in step.note
    assert step.how == "`vmrepair reboot now --target vm:patient`"


def test_the_window_policy_waits_for_the_window(ctx: RunContext) -> None:
    ctx = dataclasses.replace(ctx, options=dataclasses.replace(ctx.options, reboot_policy="window"))
    step = reboot.reboot(ctx, ISSUE, _applied(ctx, snapshot="vmrepair-pre-x"), sleep=lambda s: None)
    assert step.end is RebootEnd.PENDING and step.policy == "window" and step.note is None
    assert "maintenance window" in step.how


def test_an_explicit_automatic_is_consent_without_a_fallback(ctx: RunContext) -> None:
    options = dataclasses.replace(ctx.options, reboot_policy="automatic", reboot_policy_explicit=True)
    policy, why = reboot.effective_policy(dataclasses.replace(ctx, options=options),
                                          VerifyPlan(("p",), None, None))
    assert (policy, why) == ("automatic", None)


def test_options_override_settings_once(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    resolved = Resolved.of(RunOptions(stable_period_s=3, attempt_budget=2), settings)
    assert (resolved.stable_period_s, resolved.attempt_budget) == (3, 2)
    assert resolved.reboot_policy == settings.reboot.policy and not resolved.reboot_policy_explicit
    assert Resolved.of(RunOptions(), settings).stable_period_s == settings.repair.stable_period_s


# -- reproduce ------------------------------------------------------------------------------------

def _reproduce(ctx: RunContext, guest: Guest, imported: ImportReport) -> Reproduction:
    sandbox = FakeSandbox()
    sandbox._transport = FakeTransport(guest)
    return reproduce(ctx, Detector(ctx.app.settings.watch, sandbox.transport, sandbox.agent), ISSUE, imported)


def test_a_fault_that_shows_in_a_faithful_vm_is_reproduced(ctx: RunContext) -> None:
    reproduction = _reproduce(ctx, Guest(), ImportReport(None, None))
    assert reproduction.reproduced and reproduction.reason == ""


def test_a_vm_lacking_what_the_target_has_never_counts_as_a_reproduction(ctx: RunContext) -> None:
    """The probe fails in the VM, but maybe only because the VM lacks the program: not reproduced."""
    differs = Differences(("program app (config test of app) is not in the VM",))
    reproduction = _reproduce(ctx, Guest(), ImportReport(None, None, differences=differs))
    assert not reproduction.reproduced
    assert reproduction.reason == "environment differs: program app (config test of app) is not in the VM"
    evidence = json.loads((ctx.session.dir / "reproduce-app.json").read_text())
    assert evidence["environment"]["missing_in_vm"] == list(differs.missing)


def test_a_fault_that_does_not_show_in_the_vm_is_not_reproduced(ctx: RunContext) -> None:
    guest = Guest()
    guest.fixed = True
    reproduction = _reproduce(ctx, guest, ImportReport(None, None))
    assert not reproduction.reproduced and reproduction.reason == ""


def test_a_fault_in_a_file_the_vm_lacks_is_not_reproduced_and_says_why(ctx: RunContext) -> None:
    """No sudo in the VM: /etc/sudoers cannot be given the target's mode there, the probe passes
    (optional file absent), and the reason names what the VM lacks instead of a silent pass."""
    guest = Guest()
    guest.fixed = True
    reproduction = _reproduce(ctx, guest, ImportReport(None, None, lacking=("/etc/sudoers",)))
    assert not reproduction.reproduced
    assert reproduction.reason.startswith("the troubleshooting VM has no /etc/sudoers")
    evidence = json.loads((ctx.session.dir / "reproduce-app.json").read_text())
    assert evidence["vm_lacks"] == ["/etc/sudoers"]
