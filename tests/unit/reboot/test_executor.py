"""reboot_and_verify: committed after a good boot; rolled back (rebooting again only into a configuration
known to boot) after a bad one; reverted to the boot fallback or left alone when the target does not
come back. Never a reboot loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.app import App
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.boot.host import RebootResult
from orchestrator.config.settings import Settings
from orchestrator.errors import RebootError
from orchestrator.fleet.signature import FaultSignature
from orchestrator.reboot.executor import reboot_and_verify
from orchestrator.reboot.notify import RebootEvent
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state.outcomes import STAGE_REBOOT, STAGE_TARGET, OutcomeStore
from orchestrator.state.transactions import TransactionStore, TxnRecord
from orchestrator.transport.fake import FakeTransport
from tests.unit.apply.fakes import FakeAgent, FakeFile, systemd_transport
from tests.unit.fixpkg.scenario import build, make_target, make_vm
from tests.unit.template_watch import template_watch

OLD_BOOT, NEW_BOOT = "0f6bb6d2-1111-4222-8333-944455556666", "7a1c9e40-2222-4333-8444-a55566667777"
BAD_FSTAB = b"UUID=b6138d94-a5c1-499d-bf9b-54c63ba88098 /mnt/data ext4 defaults 0 2\n"


class FakeVms:
    def __init__(self, host: dict[str, Any], fail_reboot: bool = False) -> None:
        self.host, self.fail_reboot = host, fail_reboot
        self.reboots, self.reverted, self.deleted = 0, [], []

    def reboot(self, name: str, *, deadline_s: float | None = None) -> RebootResult:
        self.reboots += 1
        if self.fail_reboot:
            raise RebootError("the host cannot come back: console shows 'You are in emergency mode'")
        return RebootResult(OLD_BOOT, NEW_BOOT, 12.0)

    def transport(self, name: str, **kwargs: Any) -> FakeTransport:
        base = systemd_transport().handler

        def handler(argv: tuple[str, ...], stdin: bytes | None) -> Any:
            if argv == ("nginx", "-t"):
                return (0, b"", b"test is successful") if self.host["nginx_ok"] else (1, b"", b"[emerg] bad")
            if argv == ("systemctl", "is-system-running"):
                return 0, b"running\n", b""
            return base(argv, stdin)

        return FakeTransport(handler)

    def revert(self, name: str, snap: str) -> None:
        self.reverted.append(snap)

    def delete_snapshot(self, name: str, snap: str) -> None:
        self.deleted.append(snap)


class Events:
    def __init__(self) -> None:
        self.events: list[RebootEvent] = []

    def notify(self, event: RebootEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    return App(make_settings())


def _pending(app: App, target: FakeAgent, tmp_path: Path, *, snapshot: str | None) -> TxnRecord:
    """A fix applied to ``target`` (``vm:patient``) and waiting for its reboot, as the pipeline leaves it."""
    vm = make_vm(target)
    vm.files["/etc/app/app.conf"].data = b"listen 80\nworkers 4\n"
    pkg = build(target, vm, [])
    store = TransactionStore(app.state)
    txn = store.create(package_id=pkg.id, package_dir="/p", target="vm:patient", component="nginx",
                       backup_dir=str(tmp_path / "backup"), ops_total=len(pkg.operations),
                       reboot_required=True, strategy="nginx-fix")
    # The components the pipeline resolved on the target travel with the plan (config:nginx is the
    # discovered nginx profile's config test).
    record_plan(store, txn.id, VerifyPlan(("config:nginx",), snapshot, OLD_BOOT, template_watch().components))
    result = apply_package(pkg, target, systemd_transport(), backup_dir=tmp_path / "backup",
                           journal=Journal(store, txn, pkg.operations), validate=lambda: True,
                           needs_reboot=True)
    assert result.status == "applied"
    return store.get(txn.id)


def _run(app: App, txn: TxnRecord, target: FakeAgent, vms: FakeVms, events: Events) -> Any:
    app.__dict__["vms"] = vms
    return reboot_and_verify(app, txn, notifier=events, agent_for=lambda t: target)


def test_a_good_boot_commits_the_fix_and_drops_the_fallback(app: App, tmp_path: Path) -> None:
    target = make_target()
    txn = _pending(app, target, tmp_path, snapshot="vmrepair-pre-x")
    vms, events = FakeVms({"nginx_ok": True}), Events()
    outcome = _run(app, txn, target, vms, events)
    assert (outcome.status, vms.reboots, vms.deleted) == ("committed", 1, ["vmrepair-pre-x"])
    assert TransactionStore(app.state).get(txn.id).state == "committed"
    assert events.kinds == ["reboot_imminent", "reboot_succeeded"]
    assert OutcomeStore(app.state).load() == {"nginx-fix": (1, 1)}


def test_the_verdict_after_the_boot_counts_for_the_fault_the_apply_stage_recorded(app: App,
                                                                                  tmp_path: Path) -> None:
    target = make_target()
    txn = _pending(app, target, tmp_path, snapshot=None)
    fault = FaultSignature("nginx", "config_invalid", "config_invalid", "<pattern>", "debian-12")
    outcomes = OutcomeStore(app.state)
    outcomes.record("nginx-fix", succeeded=True, stage=STAGE_TARGET, target=txn.target, txn_id=txn.id,
                    signature=fault)   # what the apply stage records for this transaction
    _run(app, txn, target, FakeVms({"nginx_ok": True}), Events())
    history = outcomes.load_for(fault)["nginx-fix"]
    assert (history.stage(STAGE_TARGET), history.stage(STAGE_REBOOT)) == ((1, 1), (1, 1))
    assert history.level("fine") == (2, 2)


def test_a_failed_verification_rolls_back_and_reboots_once_more_into_a_bootable_configuration(
    app: App, tmp_path: Path
) -> None:
    target = make_target()
    before = target.state()
    txn = _pending(app, target, tmp_path, snapshot=None)
    assert target.state() != before
    vms, events = FakeVms({"nginx_ok": False}), Events()
    outcome = _run(app, txn, target, vms, events)
    assert outcome.status == "rolled_back" and outcome.rebooted_again
    assert target.state() == before                         # byte for byte, modes and owners
    assert vms.reboots == 2                                  # the fix's boot, then one into the old config
    assert TransactionStore(app.state).get(txn.id).state == "rolled_back"
    assert "config:nginx" in outcome.message
    assert OutcomeStore(app.state).load() == {"nginx-fix": (0, 1)}


def test_no_reboot_into_a_restored_configuration_that_would_not_boot(app: App, tmp_path: Path) -> None:
    target = make_target()
    target.files["/etc/fstab"] = FakeFile(BAD_FSTAB, 0o644, 0, 0)   # the restored state's known fault
    txn = _pending(app, target, tmp_path, snapshot=None)
    vms, events = FakeVms({"nginx_ok": False}), Events()
    outcome = _run(app, txn, target, vms, events)
    assert outcome.status == "rolled_back" and not outcome.rebooted_again
    assert vms.reboots == 1
    rollback = next(e for e in events.events if e.kind == "rollback")
    assert "not rebooting: the restored configuration would not boot" in rollback.message


def test_a_target_that_does_not_come_back_is_reverted_to_its_boot_fallback(app: App, tmp_path: Path) -> None:
    target = make_target()
    txn = _pending(app, target, tmp_path, snapshot="vmrepair-pre-x")
    vms, events = FakeVms({"nginx_ok": True}, fail_reboot=True), Events()
    outcome = _run(app, txn, target, vms, events)
    assert (outcome.status, vms.reverted, vms.reboots) == ("reverted", ["vmrepair-pre-x"], 1)
    assert TransactionStore(app.state).get(txn.id).state == "rolled_back"


def test_without_a_fallback_an_unreachable_target_is_left_alone_with_manual_steps(
    app: App, tmp_path: Path
) -> None:
    target = make_target()
    txn = _pending(app, target, tmp_path, snapshot=None)
    vms, events = FakeVms({"nginx_ok": True}, fail_reboot=True), Events()
    outcome = _run(app, txn, target, vms, events)
    assert (outcome.status, vms.reboots, vms.reverted) == ("unreachable", 1, [])   # no further reboot
    record = TransactionStore(app.state).get(txn.id)
    assert record.state == "pending_reboot" and "did not come back" in record.error
    failed = events.events[-1]
    assert failed.kind == "reboot_failed" and failed.support_ref == record.support_ref
    assert any(record.backup_dir in step for step in failed.manual_steps)
