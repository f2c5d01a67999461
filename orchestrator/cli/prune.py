"""`vmrepair prune [--dry-run] [--json]`: remove sessions, backups and fix packages older than the ages
of ``retention:``, listing what is removed (or would be) and why each kept item is kept.

A real prune holds the state lock (exit 6 when another vmrepair process holds it), so no run is in
progress and a ``running`` session older than the age is what a crashed run left. ``--dry-run`` takes
no lock and changes nothing; it then keeps every ``running`` session. Exit 0, or 1 when a removal
failed (listed; the item stays for the next prune). Each real prune writes one audit record.
"""

from __future__ import annotations

import argparse

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table, warning
from orchestrator.prune.run import PruneReport, prune_state
from orchestrator.state.lock import StateLock


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prune = sub.add_parser("prune", help="remove old sessions, backups and fix packages (retention:)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    prune.set_defaults(handler=cmd_prune)


def cmd_prune(app: App, args: argparse.Namespace) -> int:
    """Raises: LockHeldError (another process holds the state lock), StateError (the state directory
    cannot be listed)."""
    if args.dry_run:
        report = prune_state(app.settings, app.quiet_audit, dry_run=True, lock_held=False)
    else:
        # Not `takes_lock`: that also runs start-up recovery, which may touch targets; pruning does not.
        lock = StateLock(app.settings.lock_path)
        lock.acquire("vmrepair prune")
        try:
            report = prune_state(app.settings, app.quiet_audit, dry_run=False, lock_held=True)
        finally:
            lock.release()
    if args.json:
        emit_json(report.as_dict())
    else:
        _print(report)
    return 1 if report.errors else 0


def _print(report: PruneReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    rows = [[verb if d.prune else "keep", d.item.kind, str(d.item.path), d.reason] for d in report.decisions]
    if rows:
        table("prune (dry run)" if report.dry_run else "prune", ["action", "kind", "path", "why"], rows)
    if report.store_error:
        warning(f"state store unreadable, every backup and package kept: {report.store_error}")
    for problem in report.errors:
        warning(f"not removed: {problem}")
    done = len(report.to_prune) if report.dry_run else len(report.removed)
    info(f"{verb} {done} item(s), kept {len(report.decisions) - len(report.to_prune)}")
