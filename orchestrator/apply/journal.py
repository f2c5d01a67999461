"""The apply journal in the backup directory: what was about to happen and how far it got.

- ``intent.json``    package id, the operation list and a ``state``: ``applying`` before the first change,
                     then ``applied`` | ``rolling_back`` | ``rolled_back`` | ``rollback_failed``
- ``progress.json``  ``started`` (index of the operation begun last), ``done`` (operations completed)
                     and ``units_touched`` (a systemctl operation has begun, so units need restoring)

Both are rewritten atomically, ``progress.json`` before and after every operation, so after a crash they
tell a recovery which operations may have run. The backup next to them holds what to restore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.fixpkg.ops import DaemonReloadOp, Operation, UnitOp, op_to_dict
from orchestrator.fsutil import atomic_write
from orchestrator.session.store import now_iso

INTENT = "intent.json"
PROGRESS = "progress.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)


class Journal:
    """Writes ``intent.json`` and ``progress.json`` into ``directory``.

    Every method raises StateError when the file cannot be written.
    """

    def __init__(self, directory: Path, package_id: str, operations: tuple[Operation, ...]) -> None:
        self.directory = directory
        self.package_id = package_id
        self.operations = operations
        self.started = -1
        self.done = 0
        self.units_touched = False
        self._intent: dict[str, Any] = {}

    def begin(self) -> None:
        """Record the intent; must succeed before the target's first change."""
        self._write_progress()
        self._intent = {
            "package_id": self.package_id, "state": "applying", "started_at": now_iso(),
            "operations": [op_to_dict(op) for op in self.operations],
        }
        _write(self.directory / INTENT, self._intent)

    def start(self, index: int) -> None:
        self.started = index
        if isinstance(self.operations[index], DaemonReloadOp | UnitOp):
            self.units_touched = True
        self._write_progress()

    def finish(self, index: int) -> None:
        self.done = index + 1
        self._write_progress()

    def set_state(self, state: str, **extra: Any) -> None:
        self._intent.update(state=state, updated_at=now_iso(), **extra)
        _write(self.directory / INTENT, self._intent)

    def _write_progress(self) -> None:
        _write(self.directory / PROGRESS, {
            "package_id": self.package_id, "started": self.started, "done": self.done,
            "units_touched": self.units_touched, "updated_at": now_iso(),
        })


def read_progress(directory: Path) -> dict[str, Any] | None:
    """``progress.json`` of an earlier apply, or ``None`` when there is none.

    Raises:
        StateError: the file exists but cannot be read or parsed.
    """
    path = directory / PROGRESS
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError(f"{path}: not a JSON object")
    return data
