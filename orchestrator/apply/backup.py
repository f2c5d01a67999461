"""A verified backup of exactly the files a package touches, taken before the target is changed.

Layout of the backup directory::

    files/<sha256>   content of each file that existed (owner-only; may hold secrets from /etc)
    backup.json      per path: existed, kind (file, symlink, dir, rotated_log, file_meta), sha256, size, mode,
                     uid, gid, link; the units' prior states (is-active) and unit-file states
                     (is-enabled) (written last: without it there is no backup)

A ``set_owner_mode`` of a file is recorded as metadata only (``file_meta``): it never changes the
content, so a rollback only puts the mode and owner back, and the content of ``/etc/shadow`` (every
password hash) is never copied off the target for it.

Rotated logs are recorded as metadata only: the rotation keeps their data in its verified archive, and
copying a multi-gigabyte log off the target is what a full disk cannot afford.

A ``deb_install`` adds the package's files that ``dpkg --verify`` reports as changed (content kept) or
missing (recorded as absent), the package's dpkg status, and the ``.deb`` itself (``files/<sha256>``,
so a rollback can finish an interrupted reinstall); see :mod:`orchestrator.apply.pkg_ops`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.agent.api import AgentApi, FileEntry
from orchestrator.apply.entries import BackupEntry
from orchestrator.apply.fs_ops import expected_state, holds
from orchestrator.apply.pkg_ops import PackageRecord, files_to_back_up, holds_services, status_of
from orchestrator.apply.unit_states import unit_file_state
from orchestrator.apply.units import unit_state
from orchestrator.errors import ApplyError, StateError
from orchestrator.fixpkg.fsops import NODE_OPS, MakeDirOp, NodeOp, RemoveDirOp, SetOwnerModeOp
from orchestrator.fixpkg.ops import (
    ABSENT,
    FILE_OPS,
    DaemonReloadOp,
    DebInstallOp,
    JsonlRepairOp,
    RotateLogOp,
    UnitOp,
    UnitStateOp,
)
from orchestrator.fixpkg.package import FixPackage
from orchestrator.fsutil import atomic_write, ensure_private_dir
from orchestrator.transport.base import Transport

BACKUP_JSON = "backup.json"
FILES_DIR = "files"
FORMAT = 1


@dataclass(frozen=True)
class Backup:
    directory: Path
    package_id: str
    entries: tuple[BackupEntry, ...]
    #: unit -> ``systemctl is-active`` before apply.
    units: dict[str, str] = field(default_factory=dict)
    has_daemon_reload: bool = False
    #: Packages a ``deb_install`` reinstalls, with their status before the apply.
    packages: tuple[PackageRecord, ...] = ()
    #: unit -> ``systemctl is-enabled`` before apply, for every unit_state operation.
    unit_states: dict[str, str] = field(default_factory=dict)
    #: The apply runs dpkg with our ``policy-rc.d`` (a reinstall or a configure): a rollback or a
    #: recovery removes it if a crash left it behind.
    holds_services: bool = False

    def content(self, entry: BackupEntry) -> bytes:
        """The backed-up content of ``entry``, checked against its hash again.

        Raises:
            StateError: the blob is missing, unreadable or does not match (the backup is damaged).
        """
        if entry.sha256 is None:
            raise StateError(f"backup of {entry.path} has no content")
        path = self.directory / FILES_DIR / entry.sha256
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StateError(f"backup of {entry.path}: cannot read {path}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise StateError(f"backup of {entry.path}: {path} does not match its hash")
        return data

    def deb_path(self, record: PackageRecord) -> Path:
        """The backed-up ``.deb`` of ``record``, checked against its hash again.

        Raises:
            StateError: missing, unreadable or not matching.
        """
        path = self.directory / FILES_DIR / record.sha256
        try:
            matches = hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256
        except OSError as exc:
            raise StateError(f"backup of the .deb of {record.spec}: cannot read {path}: "
                             f"{exc.strerror}") from exc
        if not matches:
            raise StateError(f"backup of the .deb of {record.spec}: {path} does not match its hash")
        return path

    def content_of(self, path: str) -> bytes:
        """Raises: StateError (see :meth:`content`), KeyError if ``path`` was not backed up."""
        return self.content(next(e for e in self.entries if e.path == path and e.existed))


def create_backup(
    pkg: FixPackage,
    agent: AgentApi,
    transport: Transport,
    directory: Path,
    current: dict[str, FileEntry | None],
    *,
    max_file_bytes: int,
    timeout: float,
) -> Backup:
    """Back up every path ``pkg`` touches and the state of its units; return it as re-read from disk.

    ``current`` is the preflight's view of the target. Only reads the target.

    Raises:
        ApplyError: ``directory`` already holds a backup; a file is larger than ``max_file_bytes``; a
            file changed between preflight and backup.
        StateError: the backup cannot be written or does not verify (disk full, permissions).
        AgentError, TransportError: reading the target failed.
    """
    if (directory / BACKUP_JSON).exists():
        raise ApplyError(f"{directory} already holds a backup; refusing to overwrite it")
    files = ensure_private_dir(ensure_private_dir(directory) / FILES_DIR)
    entries = []
    for op in pkg.operations:
        if isinstance(op, SetOwnerModeOp) and op.kind == "file":
            entries.append(_backup_file_meta(op, current[op.path]))
        elif isinstance(op, NODE_OPS):
            entries.append(_backup_node(op, current[op.path]))
        elif isinstance(op, FILE_OPS):
            entries.append(_backup_file(op.path, op.expect_sha256, current[op.path], agent=agent,
                                        files=files, max_bytes=max_file_bytes))
        elif isinstance(op, JsonlRepairOp) and op.path not in {e.path for e in entries}:
            # The repair rewrites the file: back its content up so a rollback can put it back.
            entry = current[op.path]
            if entry is None or entry.sha256 is None:
                raise ApplyError(f"target changed since capture: {op.path} (data file to repair is absent)")
            entries.append(_backup_file(op.path, entry.sha256, entry, agent=agent, files=files,
                                        max_bytes=max_file_bytes))
        elif isinstance(op, RotateLogOp) and op.path not in {e.path for e in entries}:
            entry = current[op.path]
            if entry is None:   # preflight refuses this; checked again rather than assumed
                raise ApplyError(f"target changed since capture: {op.path} (log to rotate is absent)")
            entries.append(BackupEntry(op.path, True, "rotated_log", entry.sha256, entry.size,
                                       entry.mode, entry.uid, entry.gid))
    packages = []
    for op in pkg.operations:
        if isinstance(op, DebInstallOp):
            entries += _backup_package_files(op, entries, agent=agent, transport=transport, files=files,
                                             max_bytes=max_file_bytes, timeout=timeout)
            status = status_of(transport, op.package, op.architecture, timeout=timeout)
            if status is None or status.version != op.version:   # preflight checked; a race since
                raise ApplyError(f"target changed since capture: {op.spec} (changed during backup)")
            atomic_write(files / op.sha256, pkg.blob(op.sha256), mode=0o600)
            packages.append(PackageRecord(op.package, op.architecture, op.version, op.sha256, status.abbrev))
    units = {
        op.unit: unit_state(transport, op.unit, timeout=timeout)
        for op in pkg.operations if isinstance(op, UnitOp)
    }
    unit_states = {
        op.unit: unit_file_state(transport, op.unit, timeout=timeout)
        for op in pkg.operations if isinstance(op, UnitStateOp)
    }
    document = {
        "format": FORMAT, "package_id": pkg.id, "entries": [asdict(e) for e in entries],
        "units": units, "has_daemon_reload": any(isinstance(op, DaemonReloadOp) for op in pkg.operations),
        "packages": [asdict(p) for p in packages],
        "unit_states": unit_states,
        "holds_services": holds_services(pkg.operations),
    }
    atomic_write(directory / BACKUP_JSON, (json.dumps(document, indent=2) + "\n").encode(), mode=0o600)
    return load_backup(directory)


def _backup_package_files(
    op: DebInstallOp, known: list[BackupEntry], *, agent: AgentApi, transport: Transport, files: Path,
    max_bytes: int, timeout: float,
) -> list[BackupEntry]:
    """The files the reinstall will change: changed ones with their content, missing ones as absent."""
    seen = {entry.path for entry in known}
    findings = [f for f in files_to_back_up(op, transport, timeout=timeout) if f.path not in seen]
    found = agent.manifest([f.path for f in findings], recursive=False).by_path() if findings else {}
    entries = []
    for finding in findings:
        entry = found.get(finding.path)
        if entry is None:
            entries.append(BackupEntry(finding.path, existed=False))
        elif entry.type == "file" and entry.sha256 is not None:
            entries.append(_backup_file(finding.path, entry.sha256, entry, agent=agent, files=files,
                                        max_bytes=max_bytes))
        else:
            # dpkg verifies regular files only; a directory or symlink here is not ours to back up.
            raise ApplyError(f"{finding.path} ({op.spec}) is a {entry.type}; cannot back it up for a "
                             "reinstall")
    return entries


def _backup_file(
    path: str, expect: str, entry: FileEntry | None, *, agent: AgentApi, files: Path, max_bytes: int
) -> BackupEntry:
    if expect == ABSENT or entry is None:
        return BackupEntry(path, existed=False)
    if entry.size > max_bytes:
        raise ApplyError(f"{path} is {entry.size} bytes, more than the {max_bytes} a backup may hold")
    data = agent.read_file(path, max_bytes=max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    if sha != expect:
        raise ApplyError(f"target changed since capture: {path} (changed during backup)")
    atomic_write(files / sha, data, mode=0o600)
    return BackupEntry(path, True, "file", sha, len(data), entry.mode, entry.uid, entry.gid)


def _backup_file_meta(op: SetOwnerModeOp, entry: FileEntry | None) -> BackupEntry:
    """A file whose mode and owner alone change: what they are now, and its digest (never its content)."""
    if entry is None or not holds(expected_state(op), entry):   # preflight checked; checked again
        raise ApplyError(f"target changed since capture: {op.path} (changed during backup)")
    return BackupEntry(op.path, True, "file_meta", entry.sha256, entry.size, entry.mode, entry.uid, entry.gid)


def _backup_node(op: NodeOp, entry: FileEntry | None) -> BackupEntry:
    """What a symlink's or directory's path is now: whether it existed, its link text, mode and owner."""
    if not holds(expected_state(op), entry):   # preflight checked it; checked again, not assumed
        raise ApplyError(f"target changed since capture: {op.path} (changed during backup)")
    if entry is None:
        return BackupEntry(op.path, existed=False,
                           kind="dir" if isinstance(op, MakeDirOp | RemoveDirOp) else "symlink")
    return BackupEntry(op.path, True, "dir" if entry.type == "dir" else "symlink", mode=entry.mode,
                       uid=entry.uid, gid=entry.gid, link=entry.link)


def load_backup(directory: Path) -> Backup:
    """Read ``backup.json`` and verify every blob it names.

    Raises:
        StateError: no backup, malformed ``backup.json``, or a blob missing or not matching its hash.
    """
    path = directory / BACKUP_JSON
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
        backup = Backup(
            directory=directory, package_id=str(data["package_id"]),
            entries=tuple(BackupEntry(**item) for item in data["entries"]),
            units={str(k): str(v) for k, v in data["units"].items()},
            has_daemon_reload=bool(data["has_daemon_reload"]),
            packages=tuple(PackageRecord(**item) for item in data.get("packages", [])),
            # Absent from backups taken before packages could change unit-file states.
            unit_states={str(k): str(v) for k, v in data.get("unit_states", {}).items()},
            # Absent from backups taken before dpkg_configure held services: only a reinstall did.
            holds_services=bool(data.get("holds_services", bool(data.get("packages")))),
        )
    except FileNotFoundError as exc:
        raise StateError(f"no backup in {directory} ({BACKUP_JSON} missing)") from exc
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateError(f"corrupt backup {path}: {exc}") from exc
    for entry in backup.entries:
        if entry.kind not in ("file", "rotated_log", "symlink", "dir", "file_meta") \
                or not isinstance(entry.path, str):
            raise StateError(f"corrupt backup {path}: bad entry {entry}")
        if entry.kind == "file" and entry.existed:
            backup.content(entry)
    for record in backup.packages:
        backup.deb_path(record)
    return backup
