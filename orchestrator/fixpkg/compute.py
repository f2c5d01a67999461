"""Derive a fix package from what actually changed in the troubleshooting VM.

``before`` is the manifest captured on the target (what the VM started from); ``after`` is the manifest
of the same paths in the VM once the repair was validated. Every difference becomes an operation whose
precondition is the captured state, so apply can refuse a target that changed since capture.

Placeholders (large files captured as metadata only) hold fake content in the VM: they never become
``write_file`` operations; only a replayed ``rotate_log`` may touch them.

Meta paths (``meta_only``: captured by their own entry, never their content, such as ``/etc/shadow``
for a system file's mode) hold the *VM's own* file, whose content was never the target's: comparing
digests there would package the VM's password hashes as a ``write_file``. Only their type, mode and
owner are compared; a file there becomes at most a ``set_owner_mode`` whose precondition is the
target's captured digest, and a file created, removed or turned into another type there is refused.

A replayed ``deb_install`` restores the packaged files of its package on the target just as it did in
the VM, so the VM's changes to those paths are left to it and never also become file operations; the
package's conffiles are the exception: ``--force-confold`` keeps a modified conffile, so a conffile that
changed in the VM changed because of another step and is packaged as usual.
Symlinks, directories and mode/owner changes become node operations (:mod:`.fsops`); special files
(FIFOs, devices) and a path that changed type (a file that became a symlink ...) are refused. Links
that a recorded ``unit_state`` explains (what ``systemctl enable|disable|mask`` writes under
/etc/systemd/system: see :mod:`.unitlinks`) are left to that operation, not copied as symlinks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.agent.api import AgentApi, FileEntry, Manifest
from orchestrator.dpkg import PackagedFiles
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.diff import text_diff
from orchestrator.fixpkg.fsops import (
    MakeDirOp,
    RemoveDirOp,
    RemoveSymlinkOp,
    SetOwnerModeOp,
    SymlinkOp,
)
from orchestrator.fixpkg.ops import (
    ABSENT,
    PACKAGE_OPS,
    DaemonReloadOp,
    DebInstallOp,
    FileOp,
    Operation,
    PathOp,
    RemoveFileOp,
    RotateLogOp,
    UnitStateOp,
    WriteFileOp,
    node_meta,
)
from orchestrator.fixpkg.owners import OwnerMap
from orchestrator.fixpkg.package import FixPackage
from orchestrator.fixpkg.paths import check_allowed, is_unit_file
from orchestrator.fixpkg.replay import check_rotations, parse_replay_ops
from orchestrator.fixpkg.unitlinks import drop_unit_links
from orchestrator.timestamps import now_timestamp

#: Largest file a package carries; matches the default capture cap (bigger files are placeholders).
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024

#: Reads the captured (target) content of a path for the report's diffs; ``None`` when not available.
ContentReader = Callable[[str], bytes | None]
#: The verified ``.deb`` a ``deb_install`` recorded (its content is checked against the op's sha256).
DebReader = Callable[[DebInstallOp], bytes | None]
#: The files the VM's dpkg says a reinstalled package owns (``dpkg-query -L``) and its conffiles.
PackageFilesReader = Callable[[DebInstallOp], PackagedFiles]


def compute_package(
    before: Manifest,
    after: Manifest,
    vm_agent: AgentApi,
    replay_ops: list[dict[str, Any]],
    *,
    placeholders: set[str],
    allowed_roots: list[str],
    diagnosis: dict[str, Any],
    validation: dict[str, Any],
    issue: dict[str, Any],
    reboot_required: bool,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    before_content: ContentReader | None = None,
    deb_content: DebReader | None = None,
    package_files: PackageFilesReader | None = None,
    target_users: Mapping[str, int] | None = None,
    target_groups: Mapping[str, int] | None = None,
    meta_only: Iterable[str] = (),
) -> FixPackage:
    """Build the package that reproduces on the target what the validated repair changed in the VM.

    Raises:
        FixPackageError: a changed path is malformed, has ``..`` or lies outside ``allowed_roots``; a
            special file changed or a path changed type; a placeholder changed without a replayed
            operation; a replay operation is invalid, or a unit's state was set twice; a new file is
            too large or its content changed in the VM while it was read; an owner has no known id on
            the target; a file at a ``meta_only`` path was created, removed or changed type; a
            ``deb_install`` whose ``.deb`` (``deb_content``) or file list
            (``package_files``) is not available.
        AgentError: reading a file from the VM failed.
    """
    replay = parse_replay_ops(replay_ops, allowed_roots)
    captured = before.by_path()
    hidden = {_match_key(path) for path in placeholders}
    check_rotations(replay, captured, hidden)
    rotated = [op.path for op in replay if isinstance(op, RotateLogOp)]
    package_ops = [op for op in replay if isinstance(op, PACKAGE_OPS)]
    reinstalled = _reinstalled_paths(package_ops, package_files)
    states = _unit_states(replay)
    current = after.by_path()
    captured, current = drop_unit_links(captured, current, {op.unit for op in states})
    path_ops = _path_operations(
        captured, current, placeholders=hidden, rotated=rotated,
        owners=OwnerMap(before.entries, users=target_users, groups=target_groups),
        allowed_roots=allowed_roots, reinstalled=reinstalled, meta_only=frozenset(meta_only),
    )
    file_ops: list[FileOp] = [op for op in path_ops if isinstance(op, WriteFileOp | RemoveFileOp)]
    blobs, diffs = _fetch_contents(file_ops, vm_agent, max_file_bytes, before_content)
    blobs.update(_deb_blobs(package_ops, deb_content))
    ops: list[Operation] = list(path_ops)
    # Packages after the paths (a configure runs the fixed configuration), in the order the repair ran
    # them, and before the daemon-reload and the unit actions: with services held back during a
    # reinstall (see orchestrator.dpkg) the order against unit actions does not change the outcome.
    ops.extend(package_ops)
    # One daemon-reload after every path change and before any unit state or action is equivalent to
    # wherever the repair ran it: other replayed operations never change unit files (systemctl enable
    # and friends reload the manager themselves); a reinstall may (restored packaged unit files), so it
    # gets one too.
    touched_units = any(is_unit_file(path) for path in (*(op.path for op in path_ops), *reinstalled))
    if any(isinstance(op, DaemonReloadOp) for op in replay) or touched_units:
        ops.append(DaemonReloadOp())
    ops.extend(states)
    ops.extend(op for op in replay if not isinstance(op, (DaemonReloadOp, UnitStateOp, *PACKAGE_OPS)))
    return FixPackage(
        id=new_package_id(), created_at=now_timestamp(),
        operations=tuple(ops), blobs=blobs, issue=issue, diagnosis=diagnosis, validation=validation,
        reboot_required=reboot_required, allowed_roots=tuple(allowed_roots), diffs=diffs,
    )


def new_package_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def _match_key(path: str) -> str:
    # Lenient, for matching only: a placeholder spelled differently must still be recognised.
    return "/" + posixpath.normpath(path).lstrip("/")


def _reinstalled_paths(
    package_ops: Sequence[Operation], package_files: PackageFilesReader | None
) -> frozenset[str]:
    """Paths a replayed reinstall restores on the target: its package's files, not its conffiles."""
    paths: set[str] = set()
    for op in package_ops:
        if not isinstance(op, DebInstallOp):
            continue
        if package_files is None:
            raise FixPackageError(f"deb_install {op.spec}: the files it restores cannot be listed here")
        owned = package_files(op)
        paths |= owned.files - owned.conffiles
    return frozenset(paths)


def _deb_blobs(package_ops: Sequence[Operation], deb_content: DebReader | None) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    for op in package_ops:
        if not isinstance(op, DebInstallOp):
            continue
        data = deb_content(op) if deb_content is not None else None
        if data is None or len(data) != op.size or hashlib.sha256(data).hexdigest() != op.sha256:
            raise FixPackageError(
                f"deb_install {op.spec} {op.version}: the verified .deb the repair installed is not"
                " available (or no longer matches its sha256); retry the repair"
            )
        blobs[op.sha256] = data
    return blobs


def _is_rotation_output(path: str, rotated: Iterable[str]) -> bool:
    """Archives a rotation writes (``x.log.1``, ``x.log.1.gz``): the target's rotation makes its own."""
    return any(re.fullmatch(re.escape(log) + r"\.\d+(\.gz)?", path) for log in rotated)


def _unit_states(replay: list[Operation]) -> list[UnitStateOp]:
    states = [op for op in replay if isinstance(op, UnitStateOp)]
    seen: set[str] = set()
    for op in states:
        # Two changes of one unit (enable then mask ...) do not reduce to one state a rollback can
        # undo exactly: refused rather than guessed.
        if op.unit in seen:
            raise FixPackageError(f"{op.unit}: the repair changed its unit-file state more than once; "
                                  "a fix package sets each unit's state once")
        seen.add(op.unit)
    return states


def _path_operations(
    captured: dict[str, FileEntry],
    current: dict[str, FileEntry],
    *,
    placeholders: set[str],
    rotated: list[str],
    owners: OwnerMap,
    allowed_roots: Sequence[str],
    reinstalled: frozenset[str] = frozenset(),
    meta_only: frozenset[str] = frozenset(),
) -> list[PathOp]:
    """One operation per changed path: new directories first (parents before children), then files,
    symlinks and metadata, then removed directories (children before parents)."""
    made: list[PathOp] = []
    changed: list[PathOp] = []
    removed: list[PathOp] = []
    for path in sorted(captured.keys() | current.keys()):
        old, new = captured.get(path), current.get(path)
        # The replayed reinstall puts back the package's own files on the target as it did here.
        if path in reinstalled:
            continue
        # A rotated log and the archives its rotation wrote belong to the replayed rotate_log.
        if path in rotated or (new is not None and _is_rotation_output(path, rotated)):
            continue
        if _match_key(path) in placeholders:
            if _meta(old) != _meta(new):
                raise FixPackageError(
                    f"{path}: this large file was captured as a placeholder (metadata only) and changed"
                    " in the VM without a replayed operation; its content in the VM is not real, so the"
                    " change cannot be packaged"
                )
            continue
        if path in meta_only and "file" in {e.type for e in (old, new) if e is not None}:
            op = _file_meta_change(path, old, new, owners)
        else:
            op = _change(path, old, new, owners)
        if op is None:
            continue
        canonical = check_allowed(path, allowed_roots, node_meta=node_meta(op))
        if canonical != path:
            raise FixPackageError(f"manifest path {path!r} is not in canonical form")
        group = made if isinstance(op, MakeDirOp) else removed if isinstance(op, RemoveDirOp) else changed
        group.append(op)
    # Sorted paths put a parent before its children; removals go the other way.
    return [*made, *changed, *reversed(removed)]


def _meta(entry: FileEntry | None) -> tuple[str, int, str, str, str | None] | None:
    # Names, not numbers: ids differ between the VM and the target (see owners.py).
    return None if entry is None else (entry.type, entry.mode, entry.owner, entry.group, entry.link)


def _sha(entry: FileEntry) -> str:
    if entry.sha256 is None:
        raise FixPackageError(f"{entry.path}: the manifest has no sha256 for this regular file")
    return entry.sha256


def _change(path: str, old: FileEntry | None, new: FileEntry | None, owners: OwnerMap) -> PathOp | None:
    if _meta(old) == _meta(new) and (old is None or new is None or old.sha256 == new.sha256):
        return None
    kinds = {entry.type for entry in (old, new) if entry is not None}
    if "other" in kinds:
        raise FixPackageError(
            f"{path}: a special file (FIFO, socket, device) was created, changed or removed in the VM;"
            " fix packages do not carry special files"
        )
    if old is not None and new is not None and old.type != new.type:
        raise FixPackageError(
            f"{path}: changed from a {old.type} to a {new.type} in the VM; a fix package changes a path"
            " within its type (or creates or removes it)"
        )
    if new is None:
        return None if old is None else _removal(path, old)
    uid, gid = owners.target_ids(new)
    if old is None:
        return _creation(path, new, uid, gid)
    if new.type == "file" and _sha(old) != _sha(new):
        return WriteFileOp(path, _sha(new), new.size, new.mode, uid, gid, expect_sha256=_sha(old))
    if new.type == "symlink" and old.link != new.link:
        return SymlinkOp(path, new.link or "", uid, gid, expect_target=old.link)
    return _meta_change(path, old, new, uid, gid)


def _meta_change(path: str, old: FileEntry, new: FileEntry, uid: int, gid: int) -> PathOp | None:
    if (new.mode, uid, gid) == (old.mode, old.uid, old.gid):
        return None   # only the names differ (same ids, another name on the VM)
    return SetOwnerModeOp(
        path, new.type, new.mode if new.type != "symlink" else old.mode, uid, gid,
        old.mode, old.uid, old.gid, expect_sha256=_sha(old) if old.type == "file" else None,
        expect_target=old.link if old.type == "symlink" else None,
    )


def _file_meta_change(path: str, old: FileEntry | None, new: FileEntry | None,
                      owners: OwnerMap) -> PathOp | None:
    """A file captured by its entry only: its mode and owner may travel, never the VM's content."""
    if old is None or new is None or old.type != new.type:
        what = ("created" if old is None else "removed" if new is None
                else f"changed from a {old.type} to a {new.type}")
        raise FixPackageError(
            f"{path}: captured by its metadata only (its content never leaves the target) and {what} in"
            " the VM; only a change of its mode or owner can be packaged"
        )
    uid, gid = owners.target_ids(new)
    # The target's digest, not the VM's: the VM's file has its own content, the precondition is that
    # the target's file is still the one captured.
    return _meta_change(path, old, replace(new, sha256=old.sha256, size=old.size), uid, gid)


def _removal(path: str, old: FileEntry) -> PathOp:
    if old.type == "symlink":
        return RemoveSymlinkOp(path, expect_target=old.link or "")
    return RemoveDirOp(path) if old.type == "dir" else RemoveFileOp(path, expect_sha256=_sha(old))


def _creation(path: str, new: FileEntry, uid: int, gid: int) -> PathOp:
    if new.type == "symlink":
        return SymlinkOp(path, new.link or "", uid, gid, expect_target=None)
    if new.type == "dir":
        return MakeDirOp(path, new.mode, uid, gid)
    return WriteFileOp(path, _sha(new), new.size, new.mode, uid, gid, expect_sha256=ABSENT)


def _fetch_contents(
    ops: list[FileOp], vm_agent: AgentApi, max_bytes: int, before_content: ContentReader | None
) -> tuple[dict[str, bytes], dict[str, str]]:
    blobs: dict[str, bytes] = {}
    diffs: dict[str, str] = {}
    for op in ops:
        new: bytes | None = None
        if isinstance(op, WriteFileOp):
            if op.size > max_bytes:
                raise FixPackageError(
                    f"{op.path}: {op.size} bytes, more than the {max_bytes} a fix package may carry"
                )
            new = vm_agent.read_file(op.path, max_bytes=max_bytes)
            if hashlib.sha256(new).hexdigest() != op.sha256:
                raise FixPackageError(
                    f"{op.path}: content in the VM changed while the package was built; retry"
                )
            blobs[op.sha256] = new
        old = None
        if op.expect_sha256 != ABSENT:
            old = before_content(op.path) if before_content is not None else None
            # Without the original at hand, no diff is better than one that shows a new file.
            if old is None or hashlib.sha256(old).hexdigest() != op.expect_sha256:
                continue
        diff = text_diff(op.path, old, new)
        if diff is not None:
            diffs[op.path] = diff
    return blobs, diffs
