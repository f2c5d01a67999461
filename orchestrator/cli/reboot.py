"""`vmrepair reboot status|now|schedule|cancel`: the operator's say over reboots that finish fixes."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from rich.table import Table

from orchestrator.app import App
from orchestrator.boot.when import AT_FORMS, parse_at
from orchestrator.cli.output import emit_json, info, out_console, visible
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.reboot.store import RebootRecord
from orchestrator.state.lock import StateLock
from orchestrator.targets.spec import parse_target

_TARGET_HELP = "target: local, vm:NAME or ssh://[user@]host[:port]"
#: Exit code of `reboot now` when a reboot ran but its fix was not verified (rolled back, unreachable).
EXIT_NOT_VERIFIED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reboot = sub.add_parser("reboot", help="reboots that finish applied fixes: status, now, schedule, cancel")
    rsub = reboot.add_subparsers(dest="reboot_cmd", required=True, metavar="{status,now,schedule,cancel}")
    status = rsub.add_parser("status", help="pending and recent reboots, and when they happen")
    status.add_argument("--target", help=_TARGET_HELP)
    status.set_defaults(handler=cmd_status)
    now = rsub.add_parser("now", help="approve the pending reboot of a target and perform it now")
    now.add_argument("--target", required=True, help=_TARGET_HELP)
    now.set_defaults(handler=cmd_now)
    schedule = rsub.add_parser("schedule", help="move the pending reboot of a target to a given time")
    schedule.add_argument("at", metavar="AT", help=AT_FORMS)
    schedule.add_argument("--target", required=True, help=_TARGET_HELP)
    schedule.set_defaults(handler=cmd_schedule)
    cancel = rsub.add_parser("cancel", help="drop the pending reboot of a target (its fix stays pending)")
    cancel.add_argument("--target", required=True, help=_TARGET_HELP)
    cancel.set_defaults(handler=cmd_cancel)


def cmd_status(app: App, args: argparse.Namespace) -> int:
    """Raises: ConfigError for a target that does not parse; StateError from the store."""
    target = None if args.target is None else str(parse_target(args.target))
    records = scheduler_for(app, db=app.state_view).status(target)  # only looks: creates nothing
    if args.json:
        emit_json({"reboots": [record.as_dict() for record in records]})
        return 0
    if not records:
        info(f"no reboots pending{'' if target is None else ' for ' + target}")
        return 0
    # Not output.table(): what people copy (target, txn, support ref) must never be wrapped or cut,
    # whatever the terminal width; the prose columns fold instead.
    tbl = Table(title="vmrepair reboots", title_justify="left")
    for column in ("target", "state", "policy"):
        tbl.add_column(column, no_wrap=True)
    tbl.add_column("when", overflow="fold", ratio=2)
    tbl.add_column("reason", overflow="fold", ratio=1)
    tbl.add_column("txn", no_wrap=True)
    tbl.add_column("support ref", no_wrap=True)
    for record in records:
        tbl.add_row(*[visible(cell) for cell in _row(record)])
    out_console.print(tbl)
    return 0


def cmd_now(app: App, args: argparse.Namespace) -> int:
    """Approve the target's pending reboot, then run the executor for it, both under the state lock
    (so the executor must not take it again). Exits 1 when a fix was not verified after its reboot.

    Raises:
        RebootError: nothing pending for the target; LockHeldError: another vmrepair is at work.
    """
    target = str(parse_target(args.target))
    with _locked(app, "reboot now"):
        record = scheduler_for(app).approve_now(target)
        # Imported here: the executor pulls in transports and the verifier, which `status` never needs.
        from orchestrator.reboot.executor import run_due_reboots

        outcomes = run_due_reboots(app, target=target)
    if args.json:
        emit_json({"approved": record.as_dict(), "outcomes": [_outcome_dict(o) for o in outcomes]})
    else:
        info(f"approved reboot #{record.id} of {target}")
        for outcome in outcomes:
            info(_outcome_line(outcome))
        if not outcomes:
            info(f"nothing was rebooted (another reboot of {target} may be in progress); "
                 "see `vmrepair reboot status`")
    return 0 if all(_is_fine(o) for o in outcomes) else EXIT_NOT_VERIFIED


def cmd_schedule(app: App, args: argparse.Namespace) -> int:
    """Raises: ConfigError for an AT that does not parse or is in the past; RebootError when nothing
    is pending; LockHeldError."""
    target = str(parse_target(args.target))
    scheduler = scheduler_for(app)
    at = parse_at(args.at, scheduler.clock(), scheduler.tz)
    with _locked(app, "reboot schedule"):
        record = scheduler.schedule_at(target, at)
    _done(args, record, f"reboot #{record.id} of {target} moved: {record.when}")
    return 0


def cmd_cancel(app: App, args: argparse.Namespace) -> int:
    """Raises: RebootError when nothing is pending; LockHeldError."""
    target = str(parse_target(args.target))
    with _locked(app, "reboot cancel"):
        record = scheduler_for(app).cancel(target)
    _done(args, record, f"reboot #{record.id} of {target} cancelled; its fix stays pending_reboot until "
          "the target reboots (`vmrepair fixes list`)")
    return 0


@contextlib.contextmanager
def _locked(app: App, purpose: str) -> Iterator[None]:
    """The state lock for a mutating command (the holder's purpose shows in the loser's error)."""
    lock = StateLock(app.settings.lock_path)
    lock.acquire(purpose)
    try:
        yield
    finally:
        lock.release()


def _done(args: argparse.Namespace, record: RebootRecord, message: str) -> None:
    if args.json:
        emit_json({"reboot": record.as_dict()})
    else:
        info(message)


def _row(record: RebootRecord) -> list[str]:
    return [record.target, record.state, record.policy, record.when, record.reason,
            "\n".join(record.txn_ids) or (record.txn_id or ""), record.support_ref]


# The executor's outcomes are typed Any here: the CLI only needs as_dict()/str and two flags, and
# importing the executor's types at module level would load it for every `vmrepair` command.
def _outcome_dict(outcome: Any) -> Any:
    as_dict = getattr(outcome, "as_dict", None)
    return as_dict() if callable(as_dict) else str(outcome)


def _outcome_line(outcome: Any) -> str:
    data = _outcome_dict(outcome)
    if not isinstance(data, dict):
        return str(data)
    return ", ".join(f"{key}: {value}" for key, value in data.items()
                     if value not in (None, "", [], {}) and not isinstance(value, dict))


def _is_fine(outcome: Any) -> bool:
    """Verified, or (``local``) a reboot only requested: verified when vmrepair next starts."""
    return bool(getattr(outcome, "is_verified", True)) or getattr(outcome, "status", "") == "requested"
