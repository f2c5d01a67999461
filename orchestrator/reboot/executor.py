"""Reboot a target for a pending fix, verify it after the boot, and commit or roll back.

For ``vm:`` and ``ssh://`` targets the orchestrator reboots the target itself (``systemctl reboot``),
waits for a new boot id and verifies. For ``local`` it only requests the reboot: the verification runs
at vmrepair's first start after the boot (:mod:`orchestrator.apply.recovery`).

Never a reboot loop: one reboot per pending fix, and after a rollback a second reboot only when the
restored configuration is known to boot (its boot probes pass). A target that does not come back is
reverted to its hypervisor snapshot when it has one (``vm:``); otherwise it is left alone, marked
unreachable, and a notification carries the manual recovery steps and the support reference.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.agent.api import AgentApi
from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.apply.journal import AFTER_BOOT, roll_back_transaction
from orchestrator.audit.sink import log_recovery
from orchestrator.boot.host import RebootResult, boot_id, reboot_host
from orchestrator.errors import RebootError, VmRepairError
from orchestrator.notify.build import RebootBridge
from orchestrator.reboot.notify import Notifier, RebootEvent, RebootEventKind
from orchestrator.reboot.verify import Verdict, VerifyPlan, load_plan, verify_after_boot, would_boot
from orchestrator.state.outcomes import STAGE_REBOOT, OutcomeStore
from orchestrator.state.transactions import TransactionStore, TxnRecord
from orchestrator.systemd import reboot_argv
from orchestrator.targets.spec import TargetKind, open_target, parse_target
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

Status = Literal["committed", "rolled_back", "rollback_failed", "reverted", "unreachable", "requested"]


@dataclass
class RebootOutcome:
    txn_id: str
    target: str
    status: Status
    message: str
    reboot: RebootResult | None = None
    failures: list[str] = field(default_factory=list)
    rebooted_again: bool = False

    @property
    def is_verified(self) -> bool:
        return self.status == "committed"

    def as_dict(self) -> dict[str, Any]:
        return {"txn": self.txn_id, "target": self.target, "status": self.status, "message": self.message,
                "reboot": None if self.reboot is None else self.reboot.as_dict(),
                "failures": self.failures, "rebooted_again": self.rebooted_again}


def manual_steps(txn: TxnRecord) -> list[str]:
    return [
        f"reach the console of {txn.target} (it may be in emergency mode)",
        f"restore the files listed in {txn.backup_dir}/backup.json from {txn.backup_dir}/files/<sha256> "
        f"(or run `vmrepair fixes rollback {txn.id}` once it answers SSH)",
        "reboot it and check `systemctl is-system-running`",
        f"quote support reference {txn.support_ref} and transaction {txn.id}",
    ]


AgentFor = Callable[[Transport], AgentApi]


class _Run:
    def __init__(self, app: App, txn: TxnRecord, notifier: Notifier, agent_for: AgentFor | None = None
                 ) -> None:
        self.app, self.txn, self.notifier = app, txn, notifier
        self.store = TransactionStore(app.state)
        self.spec = parse_target(txn.target)
        self.agent_for = agent_for or (
            lambda t: RemoteAgent(t, timeout=app.settings.repair.apply_op_timeout_s))

    def notify(self, kind: RebootEventKind, message: str, **extra: Any) -> None:
        self.notifier.notify(RebootEvent(kind=kind, target=self.txn.target, message=message,
                                         txn_id=self.txn.id, support_ref=self.txn.support_ref, **extra))

    def connect(self) -> Transport:
        return open_target(self.app, self.spec)

    def reboot(self) -> RebootResult:
        deadline = self.app.settings.reboot.boot_deadline_s
        if self.spec.kind is TargetKind.VM:
            return self.app.vms.reboot(self.spec.name, deadline_s=deadline)
        return reboot_host(self.connect, deadline_s=deadline)


def reboot_and_verify(app: App, txn: TxnRecord, *, notifier: Notifier | None = None,
                      agent_for: AgentFor | None = None) -> RebootOutcome:
    """Reboot ``txn``'s target, verify the pending fix, and commit it or roll it back.

    Outcomes are results (see :data:`Status`), never exceptions, except for the state store.

    Raises:
        StateError: the transaction cannot be read or journalled.
    """
    run = _Run(app, txn, notifier or RebootBridge(app.notifier), agent_for)
    plan = load_plan(run.store, txn.id)
    if run.spec.kind is TargetKind.LOCAL:
        return _request_local(run)
    run.notify("reboot_imminent", f"rebooting {txn.target} now to verify fix {txn.id}")
    run.store.step(txn.id, "rebooting")
    try:
        result = run.reboot()
    except RebootError as exc:
        return _did_not_come_back(run, plan, exc)
    run.store.step(txn.id, "booted", detail=result.as_dict())
    return finish_after_boot(run, plan, result)


def finish_after_boot(run: _Run, plan: VerifyPlan, result: RebootResult | None) -> RebootOutcome:
    txn = run.txn
    verdict: Verdict | None = None
    try:
        with run.connect() as transport:
            verdict = verify_after_boot(run.app.settings.watch, transport, plan, run.agent_for(transport))
        failures = list(verdict.failures)
    except VmRepairError as exc:
        failures = [f"cannot verify: {exc.message}"]
    outcomes = OutcomeStore(run.app.state)
    # The same fault as the apply stage's outcome of this transaction (recorded there with it).
    signature = outcomes.signature_of_txn(txn.id)
    if verdict is not None and verdict.ok:
        run.store.step(txn.id, "committed", state="committed", verdict=verdict.as_dict())
        run.app.quiet_audit.record("fix_verified_after_boot", component=txn.component, status="committed",
                                  details={"txn": txn.id, "strategy": txn.strategy}, durable=True)
        outcomes.record(txn.strategy, succeeded=True, stage=STAGE_REBOOT, target=txn.target, txn_id=txn.id,
                        signature=signature)
        _drop_snapshot(run, plan)
        run.notify("reboot_succeeded",
                   f"{txn.target} came back and fix {txn.id} ({txn.strategy}) is verified")
        return RebootOutcome(txn.id, txn.target, "committed", "verified after the reboot", result)
    outcomes.record(txn.strategy, succeeded=False, stage=STAGE_REBOOT, target=txn.target, txn_id=txn.id,
                    signature=signature)
    return _roll_back(run, plan, result, failures)


def _roll_back(
    run: _Run, plan: VerifyPlan, result: RebootResult | None, failures: list[str]
) -> RebootOutcome:
    txn = run.txn
    cause = "verification after the reboot failed: " + "; ".join(failures)
    bootable, why_not = False, list[str]()
    try:
        with run.connect() as transport:
            agent = run.agent_for(transport)
            errors = roll_back_transaction(run.store, txn, agent, transport, steps=AFTER_BOOT, cause=cause)
            if not errors:
                bootable, why_not = would_boot(run.app.settings.watch, transport, agent)
    except VmRepairError as exc:
        if run.store.get(txn.id).state != "rolled_back":   # it could not even be reached
            errors = [f"cannot reach {txn.target} to roll back: {exc.message}"]
            run.store.step(txn.id, AFTER_BOOT.failed, state="rollback_failed", errors=errors,
                           error=errors[0][:4000])
        else:
            errors, why_not = [], [f"cannot check the restored configuration: {exc.message}"]
    if errors:
        run.notify("reboot_failed", f"fix {txn.id} failed verification and its rollback failed",
                   manual_steps=manual_steps(txn))
        return RebootOutcome(txn.id, txn.target, "rollback_failed", "; ".join(errors), result, failures)
    log_recovery(run.app.quiet_audit, txn.component, "rollback_after_boot", txn=txn.id, cause=cause[:500])
    _drop_snapshot(run, plan)
    again = False
    if bootable:
        # The running system booted with the fix; only a boot brings back the restored configuration.
        run.notify("rollback", f"fix {txn.id} rolled back on {txn.target}; rebooting once into the "
                   "restored configuration")
        try:
            run.reboot()
            again = True
        except RebootError as exc:
            run.notify("reboot_failed", f"{txn.target} did not come back after the rollback reboot: "
                       f"{exc.message}", manual_steps=manual_steps(txn))
            return RebootOutcome(txn.id, txn.target, "unreachable", exc.message, result, failures, True)
    else:
        run.notify("rollback", f"fix {txn.id} rolled back on {txn.target}; not rebooting: the restored "
                   f"configuration would not boot ({'; '.join(why_not)[:500]}), the running system stays up")
    return RebootOutcome(txn.id, txn.target, "rolled_back", cause, result, failures, again)


def _did_not_come_back(run: _Run, plan: VerifyPlan, exc: RebootError) -> RebootOutcome:
    txn = run.txn
    if plan.snapshot is not None and run.spec.kind is TargetKind.VM:
        # The boot fallback: the patient as it ran just before the fix was applied.
        run.app.vms.revert(run.spec.name, plan.snapshot)
        run.store.step(txn.id, "reverted_to_snapshot", state="rolled_back", snapshot=plan.snapshot,
                       error=f"did not boot with the fix: {exc.message}"[:4000])
        log_recovery(run.app.quiet_audit, txn.component, "revert_to_boot_fallback", txn=txn.id,
                     snapshot=plan.snapshot)
        outcomes = OutcomeStore(run.app.state)
        outcomes.record(txn.strategy, succeeded=False, stage=STAGE_REBOOT, target=txn.target, txn_id=txn.id,
                        signature=outcomes.signature_of_txn(txn.id))
        _drop_snapshot(run, plan)
        run.notify("rollback", f"{txn.target} did not boot with fix {txn.id}; reverted to the snapshot "
                   "taken before applying it")
        return RebootOutcome(txn.id, txn.target, "reverted", exc.message)
    run.store.step(txn.id, "unreachable", error=f"did not come back after the reboot: {exc.message}"[:4000])
    run.notify("reboot_failed", f"{txn.target} did not come back after the reboot for fix {txn.id}; no "
               "further reboot will be attempted", manual_steps=manual_steps(txn))
    return RebootOutcome(txn.id, txn.target, "unreachable", exc.message)


def _request_local(run: _Run) -> RebootOutcome:
    txn = run.txn
    current = boot_id(run.app.local)
    run.store.step(txn.id, "rebooting", boot_id=current)
    run.notify("reboot_imminent", f"rebooting this host now to verify fix {txn.id}; it is verified when "
               "vmrepair next starts")
    run.app.local.check(reboot_argv(), timeout=30)
    return RebootOutcome(txn.id, txn.target, "requested", "reboot requested; verified at the next start")


def _drop_snapshot(run: _Run, plan: VerifyPlan) -> None:
    if plan.snapshot is None or run.spec.kind is not TargetKind.VM:
        return
    with contextlib.suppress(VmRepairError):
        run.app.vms.delete_snapshot(run.spec.name, plan.snapshot)



def run_due_reboots(app: App, *, target: str | None = None) -> list[RebootOutcome]:
    """Perform every reboot the scheduler says is due now (``vmrepair reboot now``, the daemon)."""
    from orchestrator.reboot.schedule import scheduler_for

    scheduler = scheduler_for(app, audit=app.quiet_audit)
    notifier = scheduler.notifier
    store = TransactionStore(app.state)
    outcomes = []
    for record in scheduler.due(target):
        # Several fixes may share one reboot (a later one joined the open request): one boot, then
        # each is verified on its own.
        pending = [t for t in (store.get(i) for i in record.txn_ids) if t.state == "pending_reboot"]
        if not pending:
            scheduler.mark(record.id, "cancelled", error="no fix is waiting for this reboot any more")
            continue
        scheduler.mark(record.id, "rebooting")
        first = reboot_and_verify(app, pending[0], notifier=notifier)
        done = [first]
        for txn in pending[1:]:
            if first.status in ("committed", "rolled_back", "rollback_failed"):   # the target is up
                done.append(verify_pending(app, txn))
        outcomes += done
        if first.status == "requested":
            continue   # local: recovery marks it at the first start after the boot
        state = "unreachable" if first.status == "unreachable" else (
            "done" if first.status in ("committed", "rolled_back") else "failed")
        scheduler.mark(record.id, state, error="; ".join(o.message for o in done if not o.is_verified)[:2000])
    return outcomes


def verify_pending(app: App, txn: TxnRecord) -> RebootOutcome:
    """Verify a pending fix whose target has already rebooted (``local``: at the first start after
    the boot), then commit or roll it back.

    Raises:
        StateError: the transaction or its plan cannot be read.
    """
    run = _Run(app, txn, RebootBridge(app.notifier))
    return finish_after_boot(run, load_plan(run.store, txn.id), None)
