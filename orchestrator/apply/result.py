"""The outcome of applying a fix package, as the pipeline and the report consume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: ``applied``: every operation ran and the target validated. ``rolled_back``: something failed or
#: validation said no, and the target was restored from the verified backup. ``rollback_failed``: the
#: restore itself failed; ``errors`` says where, ``backup_dir`` holds what is needed to finish by hand.
#: ``aborted``: refused before the target was touched (changed since capture, backup impossible).
ApplyStatus = Literal["applied", "rolled_back", "rollback_failed", "aborted"]


@dataclass(frozen=True)
class ApplyResult:
    status: ApplyStatus
    backup_dir: Path
    ops_done: int
    errors: tuple[str, ...] = ()
    durations: dict[str, float] = field(default_factory=dict)
    package_id: str = ""
    #: Facts worth reporting that are not errors (rotation archives, manual recovery hints).
    notes: tuple[str, ...] = ()
    #: The transaction in the state store (``vmrepair fixes show``).
    txn_id: str = ""

    @property
    def is_applied(self) -> bool:
        return self.status == "applied"

    @property
    def is_target_untouched(self) -> bool:
        return self.status == "aborted"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "package_id": self.package_id, "backup_dir": str(self.backup_dir),
            "ops_done": self.ops_done, "errors": list(self.errors),
            "durations": dict(self.durations), "notes": list(self.notes), "txn_id": self.txn_id,
        }
