"""The operations a fix package is made of, their invariants and their JSON form.

JSON schema (one object per operation; ``mode`` is the permission bits as an integer, 0o644 = 420)::

    {"op": "write_file",  "path": P, "sha256": H, "size": N, "mode": M, "uid": U, "gid": G,
                          "expect_sha256": H0 | "absent"}
    {"op": "set_meta",    "path": P, "mode": M, "uid": U, "gid": G, "expect_sha256": H0}
    {"op": "remove_file", "path": P, "expect_sha256": H0}
    {"op": "daemon_reload"}
    {"op": "rotate_log",  "path": P, "method": "compress" | "truncate"}
    {"op": "unit",        "unit": "nginx.service", "action": "restart"}
    {"op": "deb_install", "package": P, "version": V, "architecture": A, "sha256": H, "size": N}
    {"op": "dpkg_configure", "package": P | "all"}
    {"op": "symlink",        "path": P, "target": T, "uid": U, "gid": G, "expect_target": T0 | null}
    {"op": "remove_symlink", "path": P, "expect_target": T0}
    {"op": "make_dir",       "path": P, "mode": M, "uid": U, "gid": G}
    {"op": "remove_dir",     "path": P}
    {"op": "set_owner_mode", "path": P, "kind": "file" | "dir" | "symlink", "mode": M, "uid": U, "gid": G,
                             "expect_mode": M0, "expect_uid": U0, "expect_gid": G0,
                             "expect_sha256": H0 | null, "expect_target": T0 | null}
    {"op": "unit_state",     "unit": U, "state": "enabled" | "disabled" | "masked" | "unmasked",
                             "expect": <``systemctl is-enabled`` output when the repair acted>}

``expect_sha256`` is the precondition on the target: the sha256 the file had when it was captured, or
``"absent"`` when the file must not exist. Every operation checks its own fields when constructed, so an
operation object (from the VM diff, the repair layer or a package file) is always well-formed.

``deb_install`` reinstalls package ``P`` at exactly version ``V`` (architecture ``A``) from the ``.deb``
the package carries as blob ``H`` (``N`` bytes); its precondition is that the target has ``P:A`` at
``V`` on disk (installed, unpacked, half-configured or half-installed). ``dpkg_configure`` runs
``dpkg --configure P`` (``"all"``: ``--configure -a``); its precondition is that ``P`` is not configured
(``all``: ``dpkg --audit`` reports something). See :mod:`orchestrator.apply.pkg_ops`.
The filesystem operations beyond regular files (:mod:`.fsops`) carry their precondition the same way:
``expect_target`` is the link text the symlink had at capture (``null`` for ``symlink``: the path must
be absent); ``make_dir`` requires the path to be absent, ``remove_dir`` an empty directory (a
directory's content is its own operations, removed before it); ``set_owner_mode`` requires the path's
type and its captured mode and owner, plus the content (file) or link text (symlink), and changes only
the metadata (chmod/chown on a descriptor, lchown for a symlink, whose mode Linux cannot change).
``set_meta`` is the older form for regular files (content precondition only), still loadable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal, TypeAlias, cast

from orchestrator import dpkg
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.fsops import (
    NODE_OPS,
    MakeDirOp,
    NodeOp,
    RemoveDirOp,
    RemoveSymlinkOp,
    SetOwnerModeOp,
    SymlinkOp,
)
from orchestrator.fixpkg.paths import check_allowed, is_under, is_unit_file, normalise_path

#: ``expect_sha256`` of a file that must not exist on the target.
ABSENT = "absent"

UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9@._-]+\.(service|socket|timer|target|path|mount)$")
#: Unit actions a package may replay. enable/disable/mask are left out: they change symlinks under
#: /etc/systemd that the package would not back up or restore.
UNIT_ACTIONS = frozenset({"start", "stop", "restart", "reload", "try-restart", "reload-or-restart"})
ROTATE_METHODS = ("compress", "truncate")
#: Unit-file states a package sets (``systemctl enable|disable|mask|unmask``).
UNIT_STATES = {"enabled": "enable", "disabled": "disable", "masked": "mask", "unmasked": "unmask"}
#: ``systemctl is-enabled`` answers a rollback can put back exactly (see apply/unit_states.py); a unit
#: in any other state (linked, enabled-runtime, alias, generated ...) is not changed by a package.
RESTORABLE_UNIT_STATES = frozenset({"enabled", "disabled", "masked", "static", "indirect"})

RotateMethod = Literal["compress", "truncate"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_ID = 2**32 - 2   # (uid_t)-1 means "unchanged" to chown(2): never a real owner
_INT_FIELDS = frozenset({"size", "mode", "uid", "gid", "expect_mode", "expect_uid", "expect_gid"})
#: Keys whose value may be JSON null (a precondition "absent" / "not applicable").
_NULLABLE_FIELDS = frozenset({"expect_target", "expect_sha256"})


def _check_sha(value: str, key: str) -> None:
    if not _SHA256_RE.match(value):
        raise FixPackageError(f"{key} {value!r} is not a lowercase hex sha256")


def _check_expect(value: str) -> None:
    if value != ABSENT:
        _check_sha(value, "expect_sha256")


def _check_meta(path: str, mode: int, uid: int, gid: int) -> None:
    if not 0 <= mode <= 0o7777:
        raise FixPackageError(f"{path}: mode {mode!r} is not a permission mode")
    if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
        raise FixPackageError(f"{path}: uid/gid {uid}/{gid} out of range")


def _check_path(path: str) -> None:
    if normalise_path(path) != path:
        raise FixPackageError(f"path {path!r} is not in canonical form")


@dataclass(frozen=True)
class WriteFileOp:
    """Create or replace a regular file with the package blob ``sha256`` and the given metadata."""

    path: str
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    expect_sha256: str
    name: ClassVar[str] = "write_file"

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_sha(self.sha256, "sha256")
        _check_expect(self.expect_sha256)
        _check_meta(self.path, self.mode, self.uid, self.gid)
        if self.size < 0:
            raise FixPackageError(f"{self.path}: negative size")


@dataclass(frozen=True)
class SetMetaOp:
    """Change mode/owner of a file whose content stays ``expect_sha256``."""

    path: str
    mode: int
    uid: int
    gid: int
    expect_sha256: str
    name: ClassVar[str] = "set_meta"

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_sha(self.expect_sha256, "expect_sha256")
        _check_meta(self.path, self.mode, self.uid, self.gid)


@dataclass(frozen=True)
class RemoveFileOp:
    """Remove a regular file that still has the captured content ``expect_sha256``."""

    path: str
    expect_sha256: str
    name: ClassVar[str] = "remove_file"

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_sha(self.expect_sha256, "expect_sha256")


@dataclass(frozen=True)
class DaemonReloadOp:
    """``systemctl daemon-reload``: needed after any unit file or drop-in changed."""

    name: ClassVar[str] = "daemon_reload"


@dataclass(frozen=True)
class RotateLogOp:
    """Rotate a log through the agent (verified compressed copy, then truncate), as the repair did."""

    path: str
    method: str
    name: ClassVar[str] = "rotate_log"

    def __post_init__(self) -> None:
        _check_path(self.path)
        if self.method not in ROTATE_METHODS:
            raise FixPackageError(f"{self.path}: rotate method {self.method!r} not in {ROTATE_METHODS}")

    @property
    def rotate_method(self) -> RotateMethod:
        return cast(RotateMethod, self.method)


@dataclass(frozen=True)
class JsonlRepairOp:
    """Repair a JSON-lines data file on the target with the agent's deterministic repair (backup beside
    it, good lines kept in order, unrecoverable lines quarantined), as the validated repair did in the VM.

    Replayed rather than copied: the VM's copy also holds lines the VM's own service wrote while it was
    validated, which must not end up in the target's data.
    """

    path: str
    name: ClassVar[str] = "jsonl_repair"

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True)
class UnitOp:
    """``systemctl reset-failed UNIT`` then ``systemctl ACTION UNIT``."""

    unit: str
    action: str
    name: ClassVar[str] = "unit"

    def __post_init__(self) -> None:
        # A leading '-' would reach systemctl as an option even though the regex accepts it.
        if not UNIT_NAME_RE.match(self.unit) or self.unit.startswith("-"):
            raise FixPackageError(f"{self.unit!r} is not a valid unit name")
        if self.action not in UNIT_ACTIONS:
            raise FixPackageError(
                f"unit action {self.action!r} for {self.unit} not in {sorted(UNIT_ACTIONS)}"
            )


def _check_package(name: str) -> None:
    if not dpkg.is_package_name(name):
        raise FixPackageError(f"{name!r} is not a Debian package name")


@dataclass(frozen=True)
class DebInstallOp:
    """``dpkg --force-confold -i`` of the carried ``.deb`` (blob ``sha256``): reinstall ``package`` at the
    version the target already has, restoring its packaged files (modified conffiles are kept)."""

    package: str
    version: str
    architecture: str
    sha256: str
    size: int
    name: ClassVar[str] = "deb_install"

    def __post_init__(self) -> None:
        _check_package(self.package)
        if not dpkg.is_version(self.version):
            raise FixPackageError(f"{self.package}: {self.version!r} is not a Debian version")
        if not dpkg.is_arch(self.architecture):
            raise FixPackageError(f"{self.package}: {self.architecture!r} is not a Debian architecture")
        _check_sha(self.sha256, "sha256")
        if self.size <= 0:
            raise FixPackageError(f"{self.package}: a .deb of {self.size} bytes")

    @property
    def spec(self) -> str:
        """``name:arch`` as dpkg selects it."""
        return dpkg.spec(self.package, self.architecture)


@dataclass(frozen=True)
class DpkgConfigureOp:
    """``dpkg --configure PACKAGE`` (``"all"``: ``--configure -a``), as the repair did in the VM."""

    package: str
    name: ClassVar[str] = "dpkg_configure"

    def __post_init__(self) -> None:
        if self.package != dpkg.ALL_PACKAGES:
            _check_package(self.package)
@dataclass(frozen=True)
class UnitStateOp:
    """``systemctl enable|disable|mask|unmask UNIT``, when ``systemctl is-enabled UNIT`` still prints
    ``expect`` (what it printed in the VM right before the repair acted)."""

    unit: str
    state: str
    expect: str
    name: ClassVar[str] = "unit_state"

    def __post_init__(self) -> None:
        if not UNIT_NAME_RE.match(self.unit) or self.unit.startswith("-"):
            raise FixPackageError(f"{self.unit!r} is not a valid unit name")
        if self.state not in UNIT_STATES:
            raise FixPackageError(f"unit state {self.state!r} for {self.unit} not in {sorted(UNIT_STATES)}")
        if self.expect not in RESTORABLE_UNIT_STATES:
            raise FixPackageError(
                f"{self.unit} was {self.expect!r}; a package only changes units that were "
                f"{', '.join(sorted(RESTORABLE_UNIT_STATES))} (the states a rollback can restore)"
            )

    @property
    def verb(self) -> str:
        return UNIT_STATES[self.state]


Operation: TypeAlias = (
    WriteFileOp | SetMetaOp | RemoveFileOp | DaemonReloadOp | RotateLogOp | JsonlRepairOp | UnitOp
    | DebInstallOp | DpkgConfigureOp | SymlinkOp | RemoveSymlinkOp | MakeDirOp | RemoveDirOp
    | SetOwnerModeOp | UnitStateOp
)
FileOp: TypeAlias = WriteFileOp | SetMetaOp | RemoveFileOp
PathOp: TypeAlias = FileOp | NodeOp
FILE_OPS = (WriteFileOp, SetMetaOp, RemoveFileOp)
#: Every operation on one path of the target's filesystem (content or node).
PATH_OPS = (*FILE_OPS, *NODE_OPS)
#: Operations that act on data (logs) in place on the target instead of carrying content.
DATA_OPS = (RotateLogOp, JsonlRepairOp)
#: Operations that run dpkg on the target.
PACKAGE_OPS = (DebInstallOp, DpkgConfigureOp)
#: Operations whose content travels in the package as a blob named by its sha256.
BLOB_OPS = (WriteFileOp, DebInstallOp)
OP_CLASSES: dict[str, type[Operation]] = {
    cls.name: cls
    for cls in (WriteFileOp, SetMetaOp, RemoveFileOp, DaemonReloadOp, RotateLogOp, JsonlRepairOp, UnitOp,
                DebInstallOp, DpkgConfigureOp, *NODE_OPS, UnitStateOp)
}


def op_to_dict(op: Operation) -> dict[str, Any]:
    return {"op": op.name, **asdict(op)}


def op_from_dict(data: object, where: str, *, allowed: Iterable[str] = OP_CLASSES) -> Operation:
    """Build an operation from its JSON form; ``where`` prefixes messages (``operations[3]``).

    Raises:
        FixPackageError: not an object, unknown or disallowed ``op``, missing/unknown/mistyped keys, or a
            field that breaks the operation's invariants.
    """
    if not isinstance(data, dict):
        raise FixPackageError(f"{where}: expected an object, got {type(data).__name__}")
    name = data.get("op")
    allowed = set(allowed)
    # isinstance first: an unhashable value (a list, an object) cannot be looked up in a set.
    if not isinstance(name, str) or name not in allowed:
        raise FixPackageError(f"{where}.op: {name!r} is not one of {sorted(allowed)}")
    cls = OP_CLASSES[name]
    keys = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(keys) - {"op"})
    if unknown:
        raise FixPackageError(f"{where}: unknown keys {unknown}")
    kwargs: dict[str, Any] = {}
    for key in keys:
        if key not in data:
            raise FixPackageError(f"{where}.{key}: missing")
        value = data[key]
        if value is None and key in _NULLABLE_FIELDS and _is_nullable(cls, key):
            kwargs[key] = None
            continue
        # bool is an int subclass: `"mode": true` must not pass as mode 1.
        is_int = type(value) is int
        if (key in _INT_FIELDS and not is_int) or (key not in _INT_FIELDS and not isinstance(value, str)):
            expected = "an integer" if key in _INT_FIELDS else "a string"
            raise FixPackageError(f"{where}.{key}: expected {expected}, got {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except FixPackageError as exc:
        raise FixPackageError(f"{where}: {exc.message}", remedy=exc.remedy) from exc


def _is_nullable(cls: type[Operation], key: str) -> bool:
    # Field types are strings under `from __future__ import annotations`.
    return any(f.name == key and "None" in str(f.type) for f in fields(cls))


def _phase(op: Operation) -> int:
    if isinstance(op, PATH_OPS):
        return 0
    if isinstance(op, PACKAGE_OPS):
        return 1
    if isinstance(op, DaemonReloadOp):
        return 2
    return 3 if isinstance(op, UnitStateOp) else 4


def _check_reinstalls(ops: Sequence[Operation]) -> None:
    reinstalled: set[str] = set()
    for index, op in enumerate(ops):
        if isinstance(op, DebInstallOp):
            if op.spec in reinstalled:
                raise FixPackageError(f"operations[{index}]: {op.spec} is reinstalled twice")
            reinstalled.add(op.spec)


def _check_tree_order(index: int, op: Operation, made: list[str], removed: list[str],
                      seen: set[str]) -> None:
    """Directories are created before anything goes in them and removed after what was in them."""
    if not isinstance(op, PATH_OPS):
        return
    if gone := next((d for d in removed if is_under(op.path, d)), None):
        raise FixPackageError(f"operations[{index}] ({op.name} {op.path}) comes after its directory "
                              f"{gone} is removed")
    if isinstance(op, MakeDirOp) and (inside := next((p for p in seen if is_under(p, op.path)), None)):
        raise FixPackageError(f"operations[{index}] creates {op.path} after {inside} in it was changed")
    if isinstance(op, MakeDirOp):
        made.append(op.path)
    if isinstance(op, RemoveDirOp):
        removed.append(op.path)


def _check_once(index: int, op: Operation, paths: set[str], units: set[str]) -> None:
    """At most one operation per path, one unit_state per unit: apply and restore rely on it."""
    if isinstance(op, PATH_OPS):
        if op.path in paths:
            raise FixPackageError(f"operations[{index}]: second operation on {op.path}")
        paths.add(op.path)
    if isinstance(op, UnitStateOp):
        if op.unit in units:
            raise FixPackageError(f"operations[{index}]: second unit_state of {op.unit}")
        units.add(op.unit)


def node_meta(op: Operation) -> str | None:
    """The type of node whose own existence or mode and owner ``op`` sets, if that is all it does: a
    ``make_dir`` (``dir``), a ``set_owner_mode`` of a directory or a file; None for anything else.
    What a system path's repair may do outside the allowed roots
    (:data:`~orchestrator.fixpkg.paths.SYSTEM_NODES`)."""
    if isinstance(op, MakeDirOp):
        return "dir"
    if isinstance(op, SetOwnerModeOp) and op.kind in ("dir", "file"):
        return op.kind
    return None


def validate_operations(ops: Sequence[Operation], allowed_roots: Sequence[str]) -> None:
    """Check the invariants of a whole operation list, so apply can run it in order as-is.

    Order: operations on paths (files, symlinks, directories, modes and owners), then package
    operations (in the order the repair ran them), then at most one daemon-reload, then unit-file states,
    then log rotations and unit actions in the order the repair ran them. At most one operation per path
    and per unit state; at most one ``deb_install`` per package; a directory is created before anything
    is changed below it and removed after everything below it; no rotation of a file that a file
    operation also touches; a daemon-reload whenever something under a unit directory changes; every
    path under a root.

    Raises:
        FixPackageError: an invariant is broken (the message names the operation index and path).
    """
    last_phase = 0
    seen_files: set[str] = set()
    rotated: set[str] = set()
    states: set[str] = set()
    made: list[str] = []
    removed: list[str] = []
    has_reload = False
    for index, op in enumerate(ops):
        phase = _phase(op)
        if phase < last_phase:
            raise FixPackageError(f"operations[{index}] ({op.name}) is out of order")
        last_phase = phase
        if isinstance(op, DaemonReloadOp):
            if has_reload:
                raise FixPackageError(f"operations[{index}]: more than one daemon_reload")
            has_reload = True
        if isinstance(op, (*PATH_OPS, *DATA_OPS)):
            try:
                check_allowed(op.path, allowed_roots, node_meta=node_meta(op))
            except FixPackageError as exc:
                raise FixPackageError(f"operations[{index}]: {exc.message}", remedy=exc.remedy) from exc
        _check_tree_order(index, op, made, removed, seen_files)
        _check_once(index, op, seen_files, states)
        if isinstance(op, RotateLogOp):
            rotated.add(op.path)
    _check_reinstalls(ops)
    if overlap := sorted(seen_files & rotated):
        raise FixPackageError(f"{overlap[0]} is both rotated and changed by a file operation")
    if not has_reload and any(is_unit_file(path) for path in seen_files):
        raise FixPackageError("a unit file changes but the package has no daemon_reload")
