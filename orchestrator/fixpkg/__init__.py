"""Fix packages: what a validated repair changed in the troubleshooting VM, as checked operations.

- :mod:`.paths`    lexical path rules (canonical, no ``..``, under an allowed root)
- :mod:`.ops`      the operation types, their invariants and JSON schema
- :mod:`.fsops`    operations on symlinks, directories, modes and owners
- :mod:`.unitlinks` the links ``systemctl enable|mask`` writes (left to a ``unit_state``)
- :mod:`.replay`   validation of the operations the repair layer recorded (units, unit-file states,
                   log rotation, package reinstall/configure)
- :mod:`.owners`   VM owner names -> target uid/gid
- :mod:`.compute`  :func:`compute_package`: manifests before/after -> :class:`FixPackage`
- :mod:`.package`  :class:`FixPackage` and its crash-safe, verified directory form
- :mod:`.diff`     capped unified diffs of text files for the report
"""

from __future__ import annotations

from orchestrator.fixpkg.compute import DEFAULT_MAX_FILE_BYTES, compute_package
from orchestrator.fixpkg.fsops import MakeDirOp, RemoveDirOp, RemoveSymlinkOp, SetOwnerModeOp, SymlinkOp
from orchestrator.fixpkg.ops import (
    ABSENT,
    DaemonReloadOp,
    DebInstallOp,
    DpkgConfigureOp,
    FileOp,
    Operation,
    RemoveFileOp,
    RotateLogOp,
    SetMetaOp,
    UnitOp,
    UnitStateOp,
    WriteFileOp,
)
from orchestrator.fixpkg.package import FixPackage

__all__ = [
    "ABSENT",
    "DEFAULT_MAX_FILE_BYTES",
    "DaemonReloadOp",
    "DebInstallOp",
    "DpkgConfigureOp",
    "FileOp",
    "FixPackage",
    "MakeDirOp",
    "Operation",
    "RemoveDirOp",
    "RemoveFileOp",
    "RemoveSymlinkOp",
    "RotateLogOp",
    "SetMetaOp",
    "SetOwnerModeOp",
    "SymlinkOp",
    "UnitOp",
    "UnitStateOp",
    "WriteFileOp",
    "compute_package",
]
