"""Which sessions, backups and fix packages are pruned, and why each kept one is kept (pure rules).

Kept whatever their age:

- the backup of a transaction that can still be rolled back: every state but ``rolled_back`` and
  ``aborted`` (``committed`` and ``rollback_failed`` can be rolled back with `vmrepair fixes rollback`,
  in-flight and ``pending_reboot`` ones are needed by recovery and the verification after boot);
- a backup no transaction refers to: the state store may have been moved aside after corruption
  (its remedy says the backups stay and can be restored), so it may be the last record of a fix;
- every backup and package when the state store cannot be read: nothing tells which are needed;
- a session or package of a transaction that is still in flight or waits for its reboot;
- a session still ``running`` unless the caller holds the state lock (then no run is in progress
  and the session is what a crashed run left behind) or ``pending_reboot``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.config.retention import RetentionSettings
from orchestrator.state.transactions import IN_FLIGHT, PENDING_REBOOT

Kind = Literal["session", "backup", "package"]
DAY_S = 86400.0
#: Transaction states whose backup can no longer be used (see `vmrepair fixes rollback`).
SPENT_STATES = ("rolled_back", "aborted")
#: Transaction states that still need their session and package (recovery, verification after boot).
LIVE_STATES = (*IN_FLIGHT, PENDING_REBOOT)


@dataclass(frozen=True)
class Txn:
    """What the rules need of a fix transaction."""

    id: str
    state: str
    session_id: str | None
    backup_dir: str
    package_dir: str
    #: Seconds since the transaction last changed state.
    age_s: float


@dataclass(frozen=True)
class Item:
    kind: Kind
    path: Path
    #: Seconds since the item was last written (a session: since it finished or started).
    age_s: float
    #: A session's status from session.json (``unreadable`` when it cannot be read).
    status: str = ""


@dataclass(frozen=True)
class Decision:
    item: Item
    prune: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.item.kind, "path": str(self.item.path), "prune": self.prune,
                "reason": self.reason, "age_days": round(self.item.age_s / DAY_S, 2)}


def decide(items: Iterable[Item], txns: Sequence[Txn] | None, policy: RetentionSettings, *,
           lock_held: bool) -> list[Decision]:
    """One decision per item. ``txns`` None: the state store could not be read."""
    return [_decide(item, txns, policy, lock_held=lock_held) for item in items]


def _decide(item: Item, txns: Sequence[Txn] | None, policy: RetentionSettings, *,
            lock_held: bool) -> Decision:
    if item.kind == "session":
        return _session(item, txns, policy.sessions_days, lock_held=lock_held)
    if txns is None:
        return Decision(item, False, "the state store cannot be read: nothing tells whether it is "
                                     "still needed")
    if item.kind == "backup":
        return _backup(item, txns, policy.backups_days)
    return _package(item, txns, policy.packages_days)


def _session(item: Item, txns: Sequence[Txn] | None, days: float, *, lock_held: bool) -> Decision:
    if item.status == "running" and not lock_held:
        return Decision(item, False, "may belong to a run in progress (the state lock is not held)")
    if item.status == PENDING_REBOOT:
        return Decision(item, False, "its fix waits for a reboot and its verification")
    live = [t for t in txns or () if t.session_id == item.path.name and t.state in LIVE_STATES]
    if live:
        return Decision(item, False, f"transaction {live[0].id} is {live[0].state}")
    if txns is None and item.status in ("running", "unreadable"):
        return Decision(item, False, "the state store cannot be read: its transactions are unknown")
    return _by_age(item, days, f"status {item.status or 'unknown'}")


def _backup(item: Item, txns: Sequence[Txn], days: float) -> Decision:
    owners = [t for t in txns if Path(t.backup_dir) == item.path]
    if not owners:
        return Decision(item, False, "no transaction refers to it (the state store may have been reset): "
                                     "it may be the only copy of what a fix replaced; remove it by hand")
    usable = [t for t in owners if t.state not in SPENT_STATES]
    if usable:
        return Decision(item, False, f"transaction {usable[0].id} is {usable[0].state} and can still be "
                                     "rolled back")
    # Spent: its age is how long ago the transaction ended, not when the backup was written.
    aged = Item(item.kind, item.path, min(item.age_s, *(t.age_s for t in owners)), item.status)
    return _by_age(aged, days, f"transaction {owners[0].id} is {owners[0].state}")


def _package(item: Item, txns: Sequence[Txn], days: float) -> Decision:
    owners = [t for t in txns if Path(t.package_dir) == item.path]
    live = [t for t in owners if t.state in LIVE_STATES]
    if live:
        return Decision(item, False, f"transaction {live[0].id} is {live[0].state}")
    age_s = min([item.age_s, *(t.age_s for t in owners)])
    what = f"transaction {owners[0].id} is {owners[0].state}" if owners else "never applied"
    return _by_age(Item(item.kind, item.path, age_s, item.status), days, what)


def _by_age(item: Item, days: float, what: str) -> Decision:
    age_days = item.age_s / DAY_S
    if age_days < days:
        return Decision(item, False, f"younger than {days:g} days ({what})")
    return Decision(item, True, f"older than {days:g} days ({what})")
