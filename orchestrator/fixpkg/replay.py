"""Validate the operations the repair layer recorded while it fixed the VM, before they can be replayed.

Only unit actions, unit-file states, log rotations, daemon-reloads and package operations (reinstall
of the exact installed version, configure) are replayed: file changes are never taken from the repair
layer's word, they are derived from what actually changed in the VM (see :mod:`.compute`).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.agent.api import FileEntry
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.ops import (
    DATA_OPS,
    DaemonReloadOp,
    DebInstallOp,
    DpkgConfigureOp,
    JsonlRepairOp,
    Operation,
    RotateLogOp,
    UnitOp,
    UnitStateOp,
    op_from_dict,
)
from orchestrator.fixpkg.paths import check_allowed

REPLAYABLE = (UnitOp.name, RotateLogOp.name, JsonlRepairOp.name, DaemonReloadOp.name, UnitStateOp.name,
              DebInstallOp.name, DpkgConfigureOp.name)


def parse_replay_ops(raw: object, allowed_roots: Sequence[str]) -> list[Operation]:
    """Turn the repair layer's ``[{"op": ...}, ...]`` into checked operations, in recorded order.

    Raises:
        FixPackageError: not a list, an operation that is not replayable (``write_file`` ...), a bad
            unit name or action, or a rotated path that is malformed or outside ``allowed_roots``; the
            message names the item (``replay_ops[2].unit: ...``).
    """
    if not isinstance(raw, list):
        raise FixPackageError(f"replay_ops: expected a list, got {type(raw).__name__}")
    ops: list[Operation] = []
    for index, item in enumerate(raw):
        where = f"replay_ops[{index}]"
        op = op_from_dict(item, where, allowed=REPLAYABLE)
        if isinstance(op, DATA_OPS):
            try:
                check_allowed(op.path, allowed_roots)
            except FixPackageError as exc:
                raise FixPackageError(f"{where}: {exc.message}", remedy=exc.remedy) from exc
        ops.append(op)
    return ops


def check_rotations(
    ops: Sequence[Operation], captured: dict[str, FileEntry], placeholders: set[str]
) -> None:
    """Every rotated log must be a regular file the capture saw (in full or as a placeholder).

    Raises:
        FixPackageError: a rotated path was not captured, or was captured as something else than a file.
    """
    for op in ops:
        if not isinstance(op, DATA_OPS) or op.path in placeholders:
            continue
        entry = captured.get(op.path)
        if entry is None or entry.type != "file":
            found = "not captured" if entry is None else f"a {entry.type}"
            raise FixPackageError(
                f"{op.name} {op.path}: the path was {found} on the target; only captured regular"
                " files can be acted on"
            )
