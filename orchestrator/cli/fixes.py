"""`vmrepair fixes list|show ID|rollback ID|recover|forget ID`: the applied fix transactions in the state
store.

``rollback`` restores exactly the files recorded in the transaction's verified backup (content, mode,
owner; files the fix created are removed), restores unit states if the journal shows a systemctl
operation began, verifies the files, and records it in the transaction's journal.

``forget`` closes an unfinished transaction whose target is gone for good (a ``vm:`` target whose VM was
destroyed, a decommissioned host): recovery retries an unfinished transaction on every start and fails
each time, and nothing else can end it. The operator's reason goes to the journal and the audit trail;
a ``vm:`` target that still exists is refused (recover or roll back instead).
"""

from __future__ import annotations

import argparse

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.apply.journal import BY_OPERATOR, roll_back_transaction
from orchestrator.apply.recovery import RecoveryReport
from orchestrator.cli.output import emit_json, info, table
from orchestrator.errors import ApplyError, ConfigError, VmNotFoundError
from orchestrator.state.transactions import (
    FORGOTTEN,
    IN_FLIGHT,
    STATES,
    TXN_ID_RE,
    TransactionStore,
    TxnRecord,
)
from orchestrator.targets.spec import TargetKind, open_target, parse_target

#: A rollback of these would restore files over a state nobody can vouch for any more.
NOT_ROLLBACKABLE = ("intent", "backed_up", "aborted", "rolled_back", FORGOTTEN)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fixes = sub.add_parser("fixes", help="applied fixes: list, show, roll back, recover")
    verbs = fixes.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="fix transactions, newest first")
    listing.add_argument("--target", help="only this target")
    listing.add_argument("--state", choices=STATES, help="only transactions in this state")
    listing.set_defaults(handler=cmd_list)
    show = verbs.add_parser("show", help="one transaction with its journal")
    show.add_argument("id")
    show.set_defaults(handler=cmd_show)
    rollback = verbs.add_parser("rollback", help="restore the files backed up before a fix was applied")
    rollback.add_argument("id")
    rollback.set_defaults(handler=cmd_rollback, takes_lock=True)
    recover = verbs.add_parser("recover", help="recover interrupted fix transactions now")
    recover.set_defaults(handler=cmd_recover, takes_lock=True)
    forget = verbs.add_parser("forget", help="close an unfinished transaction whose target is gone for good")
    forget.add_argument("id")
    forget.add_argument("--reason", required=True,
                        help="why the target will not come back (kept in the journal and the audit trail)")
    forget.set_defaults(handler=cmd_forget, takes_lock=True)


def _get(store: TransactionStore, txn_id: str) -> TxnRecord:
    if not TXN_ID_RE.match(txn_id):
        raise ConfigError(f"invalid transaction id {txn_id!r}", remedy="ids look like tx-0123456789ab; "
                          "see `vmrepair fixes list`")
    return store.get(txn_id)


def cmd_list(app: App, args: argparse.Namespace) -> int:
    # list and show only look: app.state_view creates and chmods nothing (issue 13).
    txns = TransactionStore(app.state_view).find(states=None if args.state is None else (args.state,),
                                            target=args.target)
    if args.json:
        emit_json({"fixes": [t.as_dict() for t in txns]})
        return 0
    if not txns:
        info("no fix transactions")
        return 0
    table("vmrepair fixes", ["id", "target", "component", "strategy", "state", "reboot", "updated (UTC)"],
          [[t.id, t.target, t.component, t.strategy, t.state,
            "yes" if t.reboot_required else "no", t.updated_at[:19]] for t in txns])
    return 0


def cmd_show(app: App, args: argparse.Namespace) -> int:
    store = TransactionStore(app.state_view)
    txn = _get(store, args.id)
    steps = store.steps(txn.id)
    if args.json:
        emit_json({**txn.as_dict(), "steps": steps})
        return 0
    for key, value in txn.as_dict().items():
        info(f"{key:16} {value}")
    info("journal:")
    for step in steps:
        info(f"  {step['seq']:3} {step['at'][:23]} {step['step']} {step['detail'] or ''}")
    return 0


def cmd_rollback(app: App, args: argparse.Namespace) -> int:
    """Raises: ApplyError when the transaction cannot be rolled back; errors reaching the target."""
    store = TransactionStore(app.state)
    txn = _get(store, args.id)
    if txn.state in NOT_ROLLBACKABLE:
        raise ApplyError(f"transaction {txn.id} is {txn.state}: nothing to roll back",
                         remedy="see `vmrepair fixes show " + txn.id + "`")
    with open_target(app, parse_target(txn.target)) as transport:
        agent = RemoteAgent(transport, timeout=app.settings.repair.apply_op_timeout_s)
        errors = roll_back_transaction(store, txn, agent, transport, steps=BY_OPERATOR,
                                       cause="rollback requested by the operator")
    if errors:
        raise ApplyError(f"rollback of {txn.id} failed: {'; '.join(errors)}",
                         remedy=f"the verified backup is in {txn.backup_dir} (backup.json lists every file)")
    if args.json:
        emit_json({"txn": txn.id, "state": "rolled_back", "backup_dir": txn.backup_dir})
    else:
        info(f"{txn.id}: rolled back on {txn.target}; files restored from {txn.backup_dir} and verified")
    return 0


def cmd_recover(app: App, args: argparse.Namespace) -> int:
    """main() recovered when it took the lock and printed each transaction; report the total here."""
    report: RecoveryReport = args.recovery
    if args.json:
        emit_json(report.as_dict())
    elif report.is_clean:
        info("nothing to recover")
    else:
        info(f"{len(report.recovered)} transaction(s) recovered, "
             f"{len(report.errors)} left for the next start")
    return 1 if report.errors else 0


#: Characters of the operator's reason kept (journal, audit trail, error column).
REASON_MAX = 500


def cmd_forget(app: App, args: argparse.Namespace) -> int:
    """Raises: ApplyError (the transaction is closed, or its VM still exists); ConfigError (no reason)."""
    store = TransactionStore(app.state)
    txn = _get(store, args.id)
    if txn.state not in IN_FLIGHT:
        # A pending reboot is the reboot scheduler's to end (it marks an unreachable target itself).
        raise ApplyError(f"transaction {txn.id} is {txn.state}: only an unfinished one (one of "
                         f"{', '.join(IN_FLIGHT)}) can be forgotten",
                         remedy=f"see `vmrepair fixes show {txn.id}`")
    reason = " ".join(args.reason.split())[:REASON_MAX]
    if not reason:
        raise ConfigError("fixes forget: --reason is empty",
                          remedy="say why the target will not come back (it is kept in the journal)")
    spec = parse_target(txn.target)
    if spec.kind is TargetKind.VM and _vm_exists(app, spec.name):
        raise ApplyError(f"transaction {txn.id}: the VM {spec.name!r} of {txn.target} still exists",
                         remedy=f"`vmrepair fixes recover` finishes it, `vmrepair fixes rollback {txn.id}` "
                                "restores its backup; forget only a transaction whose target is gone")
    store.step(txn.id, FORGOTTEN, state=FORGOTTEN, error=f"forgotten by the operator: {reason}",
               was=txn.state, reason=reason)
    app.audit.record("fix_forgotten", component=txn.component, status=FORGOTTEN, durable=True,
                     details={"txn": txn.id, "target": txn.target, "was": txn.state, "reason": reason,
                              "backup_dir": txn.backup_dir})
    if args.json:
        emit_json({"txn": txn.id, "state": FORGOTTEN, "was": txn.state, "backup_dir": txn.backup_dir})
    else:
        info(f"{txn.id}: forgotten ({txn.state} on {txn.target}, which is gone); recovery will no longer "
             f"retry it; its backup stays in {txn.backup_dir}")
    return 0


def _vm_exists(app: App, name: str) -> bool:
    """vmrepair still has the VM (its instance record; `vmrepair vm destroy` removes it)."""
    try:
        app.vms.record(name)
    except VmNotFoundError:
        return False
    return True
