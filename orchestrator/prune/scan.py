"""What the state directory holds that retention applies to, with the facts the rules need.

Layout (written by the pipeline): ``sessions/<id>/``, ``backups/<session id>/<component>-<txn>/``,
``packages/<package id>/``. Entries that are not real directories (a symbolic link, a stray file) are
not ours to judge and are never listed, so never removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import StateError
from orchestrator.prune.decide import Item, Txn
from orchestrator.session.jsonfile import UNREADABLE, read_session_meta
from orchestrator.state.db import StateDb
from orchestrator.state.transactions import TransactionStore
from orchestrator.timestamps import parse_timestamp

log = logging.getLogger(__name__)

SESSIONS, BACKUPS, PACKAGES = "sessions", "backups", "packages"
#: Every transaction is read: a prune that saw only the newest would judge the others blind.
ALL_TRANSACTIONS = 10**9


def scan_items(state_dir: Path, now: float) -> list[Item]:
    """Sessions, backups and packages under ``state_dir``, oldest path first within each kind."""
    items = [_session(path, now) for path in _dirs(state_dir / SESSIONS)]
    items += [Item("backup", path, now - _mtime(path)) for group in _dirs(state_dir / BACKUPS)
              for path in _dirs(group)]
    items += [Item("package", path, now - _mtime(path)) for path in _dirs(state_dir / PACKAGES)]
    return items


def read_txns(db: StateDb, now: float) -> list[Txn]:
    """Every transaction. Raises: StateError / StateCorruptError from the store."""
    records = TransactionStore(db).find(limit=ALL_TRANSACTIONS)
    return [Txn(r.id, r.state, r.session_id, r.backup_dir, r.package_dir, _age(r.updated_at, now, 0.0))
            for r in records]


def _session(path: Path, now: float) -> Item:
    try:
        meta = read_session_meta(path)
    except StateError:
        return Item("session", path, now - _mtime(path), UNREADABLE)
    moment = meta.get("finished_at") or meta.get("started_at")
    fallback = now - _mtime(path)
    age = _age(moment, now, fallback) if isinstance(moment, str) else fallback
    return Item("session", path, age, str(meta.get("status", "")))


def _age(moment: str, now: float, fallback: float) -> float:
    parsed = parse_timestamp(moment)
    if parsed is None:
        return fallback
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return max(0.0, now - parsed.timestamp())


def _dirs(parent: Path) -> Iterator[Path]:
    try:
        names = sorted(entry.name for entry in parent.iterdir())
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(f"cannot list {parent}: {exc.strerror}") from exc
    for name in names:
        path = parent / name
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):  # lstat: a link is never followed, nor pruned
                yield path
        except OSError:
            continue


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
