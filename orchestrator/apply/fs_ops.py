"""Apply, back up and restore the package operations on filesystem nodes (:mod:`orchestrator.fixpkg.fsops`:
symlinks, directories, owner and mode) and ``set_meta``.

Each operation hands the agent its precondition (:class:`~orchestrator.agent.api.PathState`), checked
on the lstat of the path right before the change. The backup records what each path was (kind, link
text, mode, owner, whether it existed); :func:`restore_entry` puts exactly that back, without a
precondition and idempotently (it may run again after a crash mid-restore): a created directory or
symlink is removed, a removed one recreated, a symlink re-pointed, a mode or owner reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import assert_never

from orchestrator.agent.api import AgentApi, FileEntry, PathState, PathType
from orchestrator.apply.entries import BackupEntry
from orchestrator.errors import ApplyError
from orchestrator.fixpkg.fsops import (
    MakeDirOp,
    NodeOp,
    RemoveDirOp,
    RemoveSymlinkOp,
    SetOwnerModeOp,
    SymlinkOp,
)
from orchestrator.fixpkg.ops import RemoveFileOp, SetMetaOp

#: Backup entry kinds this module restores (``file_meta``: a set_owner_mode of a file).
RESTORED_KINDS = ("file", "symlink", "dir", "file_meta")
_REMOVALS = (RemoveFileOp, RemoveSymlinkOp, RemoveDirOp)


def expected_state(op: NodeOp | SetMetaOp) -> PathState:
    """The precondition of ``op`` as the agent checks it."""
    if isinstance(op, MakeDirOp) or (isinstance(op, SymlinkOp) and op.expect_target is None):
        return PathState("absent")
    if isinstance(op, SymlinkOp | RemoveSymlinkOp):
        return PathState("symlink", link=op.expect_target)
    if isinstance(op, RemoveDirOp):
        return PathState("dir")
    if isinstance(op, SetMetaOp):
        return PathState("file", sha256=op.expect_sha256)
    if isinstance(op, SetOwnerModeOp):
        kind: PathType = "file" if op.kind == "file" else "dir" if op.kind == "dir" else "symlink"
        return PathState(kind, sha256=op.expect_sha256, link=op.expect_target, mode=op.expect_mode,
                         uid=op.expect_uid, gid=op.expect_gid)
    assert_never(op)


def run_node_op(op: NodeOp | SetMetaOp, agent: AgentApi) -> None:
    """Raises: AgentFailedError (``precondition`` when the target changed), AgentError, TransportError."""
    expect = expected_state(op)
    if isinstance(op, SymlinkOp):
        agent.set_symlink(op.path, op.target, uid=op.uid, gid=op.gid, expect=expect)
    elif isinstance(op, RemoveSymlinkOp):
        agent.remove_symlink(op.path, expect=expect)
    elif isinstance(op, MakeDirOp):
        agent.make_dir(op.path, mode=op.mode, uid=op.uid, gid=op.gid, expect=expect)
    elif isinstance(op, RemoveDirOp):
        agent.remove_dir(op.path, expect=expect)
    elif isinstance(op, SetMetaOp | SetOwnerModeOp):
        agent.set_meta(op.path, mode=op.mode, uid=op.uid, gid=op.gid, expect=expect)
    else:
        assert_never(op)


def _describe(entry: FileEntry | None) -> str:
    if entry is None:
        return "it is absent"
    if entry.type == "symlink":
        return f"it is a symlink to {entry.link!r}, uid/gid {entry.uid}/{entry.gid}"
    detail = f", sha256 {(entry.sha256 or '?')[:12]}" if entry.type == "file" else ""
    return f"it is a {entry.type}, mode {entry.mode:o}, uid/gid {entry.uid}/{entry.gid}{detail}"


def holds(state: PathState, entry: FileEntry | None) -> bool:
    if entry is None or state.type == "absent":
        return entry is None and state.type == "absent"
    actual = {"mode": entry.mode, "uid": entry.uid, "gid": entry.gid, "link": entry.link,
              "sha256": entry.sha256}
    return entry.type == state.type and all(
        actual[key] == value for key, value in state.as_args().items() if key != "type")


def check_node_op(op: NodeOp | SetMetaOp, current: dict[str, FileEntry | None],
                  below: dict[str, FileEntry], removed: Iterable[str]) -> None:
    """Preflight of one node operation against the target's manifest.

    ``below`` holds the entries found under directories the package removes, ``removed`` every path
    the package removes: a directory to remove may only hold what earlier operations remove.

    Raises:
        ApplyError: ``target changed since capture: PATH (expected ..., it is ...)``.
    """
    state, entry = expected_state(op), current.get(op.path)
    problem = None if holds(state, entry) else _describe(entry)
    if problem is None and isinstance(op, RemoveDirOp):
        gone = set(removed)
        extra = sorted(p for p in below if p.startswith(op.path + "/") and p not in gone)
        problem = f"it holds {extra[0]}, which the package does not remove" if extra else None
    if problem is not None:
        details = [f"{k} {v:o}" if k == "mode" else f"{k} {v!r}" for k, v in state.as_args().items()
                   if k != "type"]
        wanted = "absent" if state.type == "absent" else " ".join([f"a {state.type}", *details])
        raise ApplyError(
            f"target changed since capture: {op.path} (expected {wanted}; {problem})",
            remedy="run the repair again so the fix is rebuilt from the target's current state",
        )


def removed_paths(ops: Iterable[object]) -> list[str]:
    return [op.path for op in ops if isinstance(op, _REMOVALS)]


def matches(entry: BackupEntry, found: FileEntry | None) -> bool:
    """Whether the target's ``found`` already is what ``entry`` recorded."""
    if not entry.existed:
        return found is None
    if entry.kind == "file_meta":
        # Only the mode and owner were ours: whatever the content is now, it is not the package's.
        return found is not None and found.type == "file" and \
            (found.mode, found.uid, found.gid) == (entry.mode, entry.uid, entry.gid)
    if found is None or found.type != entry.kind:
        return False
    if entry.kind == "symlink":
        return (found.link, found.uid, found.gid) == (entry.link, entry.uid, entry.gid)
    same_meta = (found.mode, found.uid, found.gid) == (entry.mode, entry.uid, entry.gid)
    return same_meta and (entry.kind == "dir" or found.sha256 == entry.sha256)


def restore_entry(content: Callable[[BackupEntry], bytes], entry: BackupEntry, found: FileEntry | None,
                  agent: AgentApi) -> None:
    """Put ``entry`` back on the target, whatever the package did to it (no precondition); ``content``
    reads a file's backed-up bytes (:meth:`~.backup.Backup.content`).

    Raises:
        StateError: the backed-up content is damaged. ApplyError: a ``file_meta`` entry's file is
            gone (no content was kept). AgentError, TransportError.
    """
    if not entry.existed:
        if entry.kind == "dir":
            agent.remove_dir(entry.path, expect=None)
        elif entry.kind == "symlink":
            agent.remove_symlink(entry.path, expect=None)
        else:
            agent.remove_file(entry.path, expect_sha256=None)
    elif entry.kind == "file_meta":
        if found is None or found.type != "file":
            # No content was kept to recreate it with (the package never changed it either).
            now = "absent" if found is None else f"a {found.type}"
            raise ApplyError(f"{entry.path} is {now}; only its mode and owner were backed up, so it "
                             "cannot be recreated", remedy="restore it from the host's own backups")
        agent.set_meta(entry.path, mode=entry.mode, uid=entry.uid, gid=entry.gid, expect=None)
    elif entry.kind == "dir":
        agent.make_dir(entry.path, mode=entry.mode, uid=entry.uid, gid=entry.gid, expect=None)
    elif entry.kind == "symlink":
        if found is not None and found.type == "symlink" and found.link == entry.link:
            agent.set_meta(entry.path, mode=entry.mode, uid=entry.uid, gid=entry.gid, expect=None)
        else:
            agent.set_symlink(entry.path, entry.link or "", uid=entry.uid, gid=entry.gid, expect=None)
    elif found is not None and found.type == "file" and found.sha256 == entry.sha256:
        # Only the metadata changed: reset it rather than rewrite the content.
        agent.set_meta(entry.path, mode=entry.mode, uid=entry.uid, gid=entry.gid, expect=None)
    else:
        agent.write_file(entry.path, content(entry), mode=entry.mode, uid=entry.uid,
                         gid=entry.gid, expect_sha256=None)
