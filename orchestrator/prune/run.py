"""One prune of the state directory: scan, decide, remove, and one audit record of what was removed."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.audit.sink import AuditSink
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from orchestrator.prune.decide import Decision, Txn, decide
from orchestrator.prune.scan import BACKUPS, read_txns, scan_items
from orchestrator.state.db import open_state

log = logging.getLogger(__name__)

#: Audit component and event of prune records.
COMPONENT, EVENT = "retention", "prune"
#: Paths listed in one audit record; the count is always complete.
MAX_AUDITED_PATHS = 100


@dataclass
class PruneReport:
    dry_run: bool
    decisions: list[Decision]
    #: Why the state store could not be read ('' when it could): backups and packages were all kept.
    store_error: str = ""
    removed: list[str] = field(default_factory=list)
    #: ``path: reason`` for each removal that failed (the item stays; the next prune tries again).
    errors: list[str] = field(default_factory=list)

    @property
    def to_prune(self) -> list[Decision]:
        return [d for d in self.decisions if d.prune]

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "store_error": self.store_error, "removed": self.removed,
                "errors": self.errors, "decisions": [d.as_dict() for d in self.decisions]}


def prune_state(settings: Settings, audit: AuditSink, *, dry_run: bool, lock_held: bool,
                clock: Callable[[], float] = time.time) -> PruneReport:
    """Prune what :func:`~orchestrator.prune.decide.decide` says is due (nothing with ``dry_run``).

    ``lock_held``: the caller holds the state lock, so no run is in progress.

    Raises:
        StateError: the state directory cannot be listed. A failed removal is in the report; an audit
            record that cannot be written is logged by a quiet sink, or raised by a strict one.
    """
    now = clock()
    store_error = ""
    txns: list[Txn] | None
    try:
        with open_state(settings.state_db, readonly=True) as db:
            txns = read_txns(db, now)
    except StateError as exc:
        txns, store_error = None, exc.message
    report = PruneReport(dry_run, decide(scan_items(settings.state_dir, now), txns, settings.retention,
                                         lock_held=lock_held), store_error)
    if dry_run:
        return report
    for decision in report.to_prune:
        path = decision.item.path
        try:
            _remove_tree(path)
        except OSError as exc:
            report.errors.append(f"{path}: {exc.strerror or exc}")
            continue
        report.removed.append(str(path))
        log.info("pruned %s %s: %s", decision.item.kind, path, decision.reason)
    _drop_empty_groups(settings.state_dir / BACKUPS)
    audit.record(EVENT, component=COMPONENT, status="failed" if report.errors else "pruned",
                 details={"removed": len(report.removed), "paths": report.removed[:MAX_AUDITED_PATHS],
                          "kept": len(report.decisions) - len(report.to_prune), "errors": report.errors[:20],
                          "store_error": store_error}, durable=True)
    return report


def _remove_tree(path: Path) -> None:
    # Checked again right before removal: a link planted in its place since the scan is left alone
    # (rmtree itself never follows links below the top).
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise OSError(0, "no longer a directory; left alone")
    shutil.rmtree(path)


def _drop_empty_groups(backups: Path) -> None:
    """``backups/<session id>/`` directories whose last backup was pruned."""
    with contextlib.suppress(OSError):
        for group in backups.iterdir():
            with contextlib.suppress(OSError):
                if group.is_dir() and not group.is_symlink() and not any(group.iterdir()):
                    group.rmdir()
