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

``expect_sha256`` is the precondition on the target: the sha256 the file had when it was captured, or
``"absent"`` when the file must not exist. Every operation checks its own fields when constructed, so an
operation object (from the VM diff, the repair layer or a package file) is always well-formed.

``deb_install`` reinstalls package ``P`` at exactly version ``V`` (architecture ``A``) from the ``.deb``
the package carries as blob ``H`` (``N`` bytes); its precondition is that the target has ``P:A`` at
``V`` on disk (installed, unpacked, half-configured or half-installed). ``dpkg_configure`` runs
``dpkg --configure P`` (``"all"``: ``--configure -a``); its precondition is that ``P`` is not configured
(``all``: ``dpkg --audit`` reports something). See :mod:`orchestrator.apply.pkg_ops`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal, TypeAlias, cast

from orchestrator import dpkg
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.paths import check_allowed, is_unit_file, normalise_path

#: ``expect_sha256`` of a file that must not exist on the target.
ABSENT = "absent"

UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9@._-]+\.(service|socket|timer|target|path|mount)$")
#: Unit actions a package may replay. enable/disable/mask are left out: they change symlinks under
#: /etc/systemd that the package would not back up or restore.
UNIT_ACTIONS = frozenset({"start", "stop", "restart", "reload", "try-restart", "reload-or-restart"})
ROTATE_METHODS = ("compress", "truncate")

RotateMethod = Literal["compress", "truncate"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_ID = 2**32 - 2   # (uid_t)-1 means "unchanged" to chown(2): never a real owner
_INT_FIELDS = frozenset({"size", "mode", "uid", "gid"})


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


Operation: TypeAlias = (
    WriteFileOp | SetMetaOp | RemoveFileOp | DaemonReloadOp | RotateLogOp | JsonlRepairOp | UnitOp
    | DebInstallOp | DpkgConfigureOp
)
FileOp: TypeAlias = WriteFileOp | SetMetaOp | RemoveFileOp
FILE_OPS = (WriteFileOp, SetMetaOp, RemoveFileOp)
#: Operations that act on data (logs) in place on the target instead of carrying content.
DATA_OPS = (RotateLogOp, JsonlRepairOp)
#: Operations that run dpkg on the target.
PACKAGE_OPS = (DebInstallOp, DpkgConfigureOp)
#: Operations whose content travels in the package as a blob named by its sha256.
BLOB_OPS = (WriteFileOp, DebInstallOp)
OP_CLASSES: dict[str, type[Operation]] = {
    cls.name: cls
    for cls in (WriteFileOp, SetMetaOp, RemoveFileOp, DaemonReloadOp, RotateLogOp, JsonlRepairOp, UnitOp,
                DebInstallOp, DpkgConfigureOp)
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


def _phase(op: Operation) -> int:
    if isinstance(op, FILE_OPS):
        return 0
    if isinstance(op, PACKAGE_OPS):
        return 1
    return 2 if isinstance(op, DaemonReloadOp) else 3


def _check_reinstalls(ops: Sequence[Operation]) -> None:
    reinstalled: set[str] = set()
    for index, op in enumerate(ops):
        if isinstance(op, DebInstallOp):
            if op.spec in reinstalled:
                raise FixPackageError(f"operations[{index}]: {op.spec} is reinstalled twice")
            reinstalled.add(op.spec)


def validate_operations(ops: Sequence[Operation], allowed_roots: Sequence[str]) -> None:
    """Check the invariants of a whole operation list, so apply can run it in order as-is.

    Order: file operations, then package operations (in the order the repair ran them), then at most one
    daemon-reload, then log rotations and unit actions in the order the repair ran them. At most one
    file operation per path; at most one ``deb_install`` per package; no rotation of a file that a file
    operation also touches; a daemon-reload whenever a unit file changes; every path under a root.

    Raises:
        FixPackageError: an invariant is broken (the message names the operation index and path).
    """
    last_phase = 0
    seen_files: set[str] = set()
    rotated: set[str] = set()
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
        if isinstance(op, (*FILE_OPS, *DATA_OPS)):
            try:
                check_allowed(op.path, allowed_roots)
            except FixPackageError as exc:
                raise FixPackageError(f"operations[{index}]: {exc.message}", remedy=exc.remedy) from exc
        if isinstance(op, FILE_OPS):
            if op.path in seen_files:
                raise FixPackageError(f"operations[{index}]: second file operation on {op.path}")
            seen_files.add(op.path)
        if isinstance(op, RotateLogOp):
            rotated.add(op.path)
    _check_reinstalls(ops)
    if overlap := sorted(seen_files & rotated):
        raise FixPackageError(f"{overlap[0]} is both rotated and changed by a file operation")
    if not has_reload and any(is_unit_file(path) for path in seen_files):
        raise FixPackageError("a unit file changes but the package has no daemon_reload")
