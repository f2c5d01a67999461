"""Derive a fix package from what actually changed in the troubleshooting VM.

``before`` is the manifest captured on the target (what the VM started from); ``after`` is the manifest
of the same paths in the VM once the repair was validated. Every difference becomes an operation whose
precondition is the captured state, so apply can refuse a target that changed since capture.

Placeholders (large files captured as metadata only) hold fake content in the VM: they never become
``write_file`` operations; only a replayed ``rotate_log`` may touch them.

A replayed ``deb_install`` restores the packaged files of its package on the target just as it did in
the VM, so the VM's changes to those paths are left to it and never also become file operations; the
package's conffiles are the exception: ``--force-confold`` keeps a modified conffile, so a conffile that
changed in the VM changed because of another step and is packaged as usual.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from orchestrator.agent.api import AgentApi, FileEntry, Manifest
from orchestrator.dpkg import PackagedFiles
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.diff import text_diff
from orchestrator.fixpkg.ops import (
    ABSENT,
    PACKAGE_OPS,
    DaemonReloadOp,
    DebInstallOp,
    FileOp,
    Operation,
    RemoveFileOp,
    RotateLogOp,
    SetMetaOp,
    WriteFileOp,
)
from orchestrator.fixpkg.owners import OwnerMap
from orchestrator.fixpkg.package import FixPackage
from orchestrator.fixpkg.paths import check_allowed, is_under, is_unit_file
from orchestrator.fixpkg.replay import check_rotations, parse_replay_ops

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
) -> FixPackage:
    """Build the package that reproduces on the target what the validated repair changed in the VM.

    Raises:
        FixPackageError: a changed path is malformed, has ``..`` or lies outside ``allowed_roots``; a
            symlink, directory or special file changed; a placeholder changed without a replayed
            operation; a replay operation is invalid; a new file is too large or its content changed in
            the VM while it was read; an owner has no known id on the target; a ``deb_install`` whose
            ``.deb`` (``deb_content``) or file list (``package_files``) is not available.
        AgentError: reading a file from the VM failed.
    """
    replay = parse_replay_ops(replay_ops, allowed_roots)
    captured = before.by_path()
    hidden = {_match_key(path) for path in placeholders}
    check_rotations(replay, captured, hidden)
    rotated = [op.path for op in replay if isinstance(op, RotateLogOp)]
    package_ops = [op for op in replay if isinstance(op, PACKAGE_OPS)]
    reinstalled = _reinstalled_paths(package_ops, package_files)
    file_ops = _file_operations(
        captured, after.by_path(), placeholders=hidden, rotated=rotated,
        owners=OwnerMap(before.entries), allowed_roots=allowed_roots, reinstalled=reinstalled,
    )
    blobs, diffs = _fetch_contents(file_ops, vm_agent, max_file_bytes, before_content)
    blobs.update(_deb_blobs(package_ops, deb_content))
    ops: list[Operation] = list(file_ops)
    # Packages after the files (a configure runs the fixed configuration), in the order the repair ran
    # them, and before the daemon-reload and the unit actions: with services held back during a
    # reinstall (see orchestrator.dpkg) the order against unit actions does not change the outcome.
    ops.extend(package_ops)
    # One daemon-reload after every file change and before any unit action is equivalent to wherever
    # the repair ran it: other replayed operations never change unit files; a reinstall may (restored
    # packaged unit files), so it gets one too.
    touched_units = any(is_unit_file(path) for path in (*(op.path for op in file_ops), *reinstalled))
    if any(isinstance(op, DaemonReloadOp) for op in replay) or touched_units:
        ops.append(DaemonReloadOp())
    ops.extend(op for op in replay if not isinstance(op, (DaemonReloadOp, *PACKAGE_OPS)))
    return FixPackage(
        id=new_package_id(), created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
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


def _file_operations(
    captured: dict[str, FileEntry],
    current: dict[str, FileEntry],
    *,
    placeholders: set[str],
    rotated: list[str],
    owners: OwnerMap,
    allowed_roots: Sequence[str],
    reinstalled: frozenset[str] = frozenset(),
) -> list[FileOp]:
    ops: list[FileOp] = []
    new_dirs: list[str] = []
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
        if old is None and new is not None and new.type == "dir":
            new_dirs.append(path)
            continue
        op = _change(path, old, new, owners)
        if op is not None:
            canonical = check_allowed(path, allowed_roots)
            if canonical != path:
                raise FixPackageError(f"manifest path {path!r} is not in canonical form")
            ops.append(op)
    for directory in new_dirs:
        # Directories are created implicitly by the files written into them; an empty new one is a
        # change the package could not reproduce, and silently dropping it would misreport the fix.
        if not any(isinstance(op, WriteFileOp) and is_under(op.path, directory) for op in ops):
            raise FixPackageError(f"{directory}: an empty directory was created in the VM; not packageable")
    return ops


def _meta(entry: FileEntry | None) -> tuple[str, int, str, str, str | None] | None:
    # Names, not numbers: ids differ between the VM and the target (see owners.py).
    return None if entry is None else (entry.type, entry.mode, entry.owner, entry.group, entry.link)


def _sha(entry: FileEntry) -> str:
    if entry.sha256 is None:
        raise FixPackageError(f"{entry.path}: the manifest has no sha256 for this regular file")
    return entry.sha256


def _change(
    path: str, old: FileEntry | None, new: FileEntry | None, owners: OwnerMap
) -> FileOp | None:
    kinds = {entry.type for entry in (old, new) if entry is not None}
    if kinds - {"file"}:
        if _meta(old) == _meta(new):
            return None
        what = "symlink" if "symlink" in kinds else "directory" if "dir" in kinds else "special file"
        raise FixPackageError(
            f"{path}: a {what} was created, changed or removed in the VM; fix packages only change"
            " regular files (symlinks, directories and special files must be identical)"
        )
    if new is None:
        return None if old is None else RemoveFileOp(path, expect_sha256=_sha(old))
    uid, gid = owners.target_ids(new)
    if old is None or _sha(old) != _sha(new):
        expect = ABSENT if old is None else _sha(old)
        return WriteFileOp(path, _sha(new), new.size, new.mode, uid, gid, expect_sha256=expect)
    if _meta(old) != _meta(new):
        return SetMetaOp(path, new.mode, uid, gid, expect_sha256=_sha(old))
    return None


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
        if isinstance(op, SetMetaOp):
            continue
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
