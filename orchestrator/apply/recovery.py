"""Recovery of interrupted fix applications, run at every start of a mutating command and the daemon.

Only a process that holds the state lock applies fixes, so a transaction still in flight while the
lock is free belongs to a process that died (kill -9, power loss). For each one, by its last durable
journal step:

- ``intent``, ``backed_up``: no operation had started; the target is untouched → ``aborted``.
- ``applying``, ``rolling_back``: some operations may have run → restore the verified backup →
  ``rolled_back`` (or ``rollback_failed`` with every failure listed).
- ``applied``: every operation ran but the verdict was not recorded → verify with the recorded plan:
  passing → ``committed`` (``pending_reboot`` when the fix needs a boot), failing → rolled back.
- ``pending_reboot`` on ``local``, after the host booted (new boot id) → verified now, committed or
  rolled back (the ``local`` half of the reboot flow).

A target that cannot be reached leaves its transaction as it is for the next start; the report says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent.api import AgentApi
from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.apply.journal import IN_RECOVERY, roll_back_transaction
from orchestrator.audit.sink import AuditSink, log_recovery
from orchestrator.boot.host import boot_id
from orchestrator.errors import AuditError, StateError, VmRepairError
from orchestrator.pipeline.resume import VmsFor, close_interrupted_runs
from orchestrator.reboot.verify import load_plan, verify_after_boot
from orchestrator.state.transactions import IN_FLIGHT, PENDING_REBOOT, TransactionStore, TxnRecord
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    recovered: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Runs whose process died, closed as ``interrupted`` (:mod:`orchestrator.pipeline.resume`).
    interrupted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        return not self.recovered and not self.errors and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        return {"recovered": self.recovered, "errors": self.errors, "interrupted": self.interrupted}


Connect = Callable[[str], Transport]
AgentFor = Callable[[Transport], AgentApi]


def recover_on_start(app: App, *, connect: Connect | None = None,
                     agent_for: AgentFor | None = None, vms: VmsFor | None = None) -> RecoveryReport:
    """Recover every interrupted transaction, then close the runs they belonged to (and any other run
    whose process died: :func:`~orchestrator.pipeline.resume.close_interrupted_runs`). The caller must
    hold the state lock.

    ``connect`` (target text → transport) and ``agent_for`` default to the real targets and the
    uploaded agent; tests point them at a scratch directory. ``vms`` defaults to ``app.vms``.

    Raises:
        StateCorruptError: the store cannot be trusted (vmrepair refuses to act).
        StateError: the store cannot be read or written.
    """
    store = TransactionStore(app.state)
    report = RecoveryReport()
    ways = _Ways(connect or (lambda target: open_target(app, parse_target(target))),
                 agent_for or (lambda t: RemoteAgent(t, timeout=app.settings.repair.apply_op_timeout_s)))
    audit = app.audit
    _audit_unaudited(store, audit)
    for txn in reversed(store.find(states=IN_FLIGHT)):   # oldest first
        try:
            state, message = _recover(app, store, txn, ways)
        except VmRepairError as exc:
            report.errors.append(f"{txn.id} on {txn.target} ({txn.state}): {exc.message}; left for the "
                                 "next start")
            continue
        item = {"txn": txn.id, "target": txn.target, "from": txn.state, "to": state, "message": message}
        report.recovered.append(item)
        # After the audit entry: a start that finds a recovery end without this step audits it then.
        if _audit(audit, item):
            store.step(txn.id, AUDITED)
    for txn in store.find(states=(PENDING_REBOOT,), target="local"):
        before = len(report.recovered)
        _verify_local_after_boot(app, store, txn, report)
        for item in report.recovered[before:]:
            _audit(audit, item)
    # After the transactions: a closed run's report names the state recovery left its fixes in.
    report.interrupted = [run.as_dict() for run in close_interrupted_runs(app, vms=vms)]
    return report


#: The journal steps a recovery ends a transaction with; each is followed by :data:`AUDITED` once the
#: audit trail has its entry.
RECOVERY_ENDS = frozenset({"recovered_aborted", "recovered_verified", IN_RECOVERY.done, IN_RECOVERY.failed})
AUDITED = "recovery_audited"


def _audit(audit: AuditSink, item: dict[str, str]) -> bool:
    """Whether the audit trail has the entry now (a failed append is logged; recovery goes on)."""
    log.warning("recovered transaction %s: %s -> %s (%s)", item["txn"], item["from"], item["to"],
                item["message"])
    try:
        log_recovery(audit, "pipeline", "journal_recovery", status=item["to"], txn=item["txn"],
                     target=item["target"], was=item["from"], message=item["message"])
    except AuditError as exc:
        log.exception("audit of recovered transaction %s not written: %s", item["txn"], exc.message)
        return False
    return True


def _audit_unaudited(store: TransactionStore, audit: AuditSink) -> None:
    """Audit the recoveries a crash cut off between their last journal step and their audit entry
    (the journal is the record of what happened; the audit trail must not miss it)."""
    for txn in store.find(states=None):
        steps = [s["step"] for s in store.steps(txn.id)]
        ends = [i for i, step in enumerate(steps) if step in RECOVERY_ENDS]
        if ends and AUDITED not in steps[ends[-1]:]:
            late = {"txn": txn.id, "target": txn.target, "from": "unknown (the recovery was interrupted "
                    "before its audit entry; the journal has its steps)", "to": txn.state,
                    "message": f"audited late: {txn.error or steps[ends[-1]]}"}
            if _audit(audit, late):
                store.step(txn.id, AUDITED)


@dataclass(frozen=True)
class _Ways:
    connect: Connect
    agent_for: AgentFor


def _recover(app: App, store: TransactionStore, txn: TxnRecord, ways: _Ways) -> tuple[str, str]:
    if txn.state in ("intent", "backed_up"):
        message = "interrupted before the first change; the target was not touched"
        store.step(txn.id, "recovered_aborted", state="aborted", error=message)
        return "aborted", message
    with ways.connect(txn.target) as transport:
        if txn.state == "applied":
            try:
                plan = load_plan(store, txn.id)
            except StateError as exc:   # nothing says what "verified" means: the old state is safer
                return _roll_back(store, txn, transport, ways.agent_for(transport),
                                  f"all operations had run but {exc.message}")
            verdict = verify_after_boot(app.settings.watch, transport, plan)
            if verdict.ok:
                state = PENDING_REBOOT if txn.reboot_required else "committed"
                store.step(txn.id, "recovered_verified", state=state, verdict=verdict.as_dict())
                return state, "all operations had run and the target verifies"
            cause = "all operations had run but the target does not verify: " + "; ".join(verdict.failures)
        else:
            cause = f"interrupted while {txn.state} (after {txn.ops_done} of {txn.ops_total} operations)"
        return _roll_back(store, txn, transport, ways.agent_for(transport), cause)


def _roll_back(
    store: TransactionStore, txn: TxnRecord, transport: Transport, agent: AgentApi, cause: str
) -> tuple[str, str]:
    errors = roll_back_transaction(store, txn, agent, transport, steps=IN_RECOVERY, cause=cause)
    return ("rollback_failed", "; ".join(errors)) if errors else ("rolled_back", cause)


def _verify_local_after_boot(
    app: App, store: TransactionStore, txn: TxnRecord, report: RecoveryReport
) -> None:
    try:
        plan = load_plan(store, txn.id)
        requested = [s["detail"].get("boot_id") for s in store.steps(txn.id) if s["step"] == "rebooting"]
        before = requested[-1] if requested else plan.boot_id
        if before is None or boot_id(app.local) == before:
            return   # not rebooted yet: still pending
        # Imported here: the executor pulls in notifiers, which recovery does not otherwise need.
        from orchestrator.reboot.executor import verify_pending

        outcome = verify_pending(app, txn)
        _close_local_reboot(app, txn.id, outcome.is_verified or outcome.status == "rolled_back")
    except VmRepairError as exc:
        report.errors.append(f"{txn.id} on local (pending_reboot): {exc.message}")
        return
    report.recovered.append({"txn": txn.id, "target": "local", "from": PENDING_REBOOT,
                             "to": outcome.status, "message": outcome.message})


def _close_local_reboot(app: App, txn_id: str, ok: bool) -> None:
    """The local reboot record stayed ``rebooting`` across the boot; close it now it is verified."""
    from orchestrator.reboot.schedule import scheduler_for

    scheduler = scheduler_for(app)
    for record in scheduler.status("local"):
        if record.state == "rebooting" and txn_id in record.txn_ids:
            scheduler.mark(record.id, "done" if ok else "failed")
