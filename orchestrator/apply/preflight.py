"""Preflight: the target must still be exactly as it was captured before anything is changed on it.

A fix validated against one state of a file says nothing about another: if a file changed since capture
(someone edited it, a package upgrade ran), the package is refused rather than merged.
"""

from __future__ import annotations

from orchestrator.agent.api import AgentApi, FileEntry
from orchestrator.apply.fs_ops import check_node_op, removed_paths
from orchestrator.apply.unit_states import check_unit_state, is_checked_at_preflight
from orchestrator.errors import ApplyError
from orchestrator.fixpkg.fsops import NODE_OPS, RemoveDirOp
from orchestrator.fixpkg.ops import ABSENT, DATA_OPS, FILE_OPS, SetMetaOp, UnitStateOp
from orchestrator.fixpkg.package import FixPackage
from orchestrator.transport.base import Transport


def _describe(entry: FileEntry | None) -> str:
    if entry is None:
        return "it is absent"
    if entry.type != "file":
        return f"it is a {entry.type}"
    return f"sha256 {(entry.sha256 or '?')[:12]}"


def preflight(
    pkg: FixPackage, agent: AgentApi, transport: Transport | None = None, *, timeout: float = 120.0
) -> dict[str, FileEntry | None]:
    """Check every operation's precondition on the target; return the target's entry for each path.

    Reads only: one manifest call (two when the package changes symlinks, directories or owners:
    those paths are listed without what is below them, except directories it removes), and one
    ``systemctl is-enabled`` per unit_state operation on ``transport``.

    Raises:
        ApplyError: ``target changed since capture: PATH (...)`` for the first path whose state differs
            from the precondition (content, absence, type, link text, mode, owner), a directory to remove
            that holds something the package does not remove, a log to rotate that is not a file, or a
            unit whose ``systemctl is-enabled`` answer is not the expected one.
        AgentError, TransportError: the manifest could not be taken.
    """
    nodes = {op.path for op in pkg.operations if isinstance(op, NODE_OPS) and not isinstance(op, RemoveDirOp)}
    paths = [path for path in dict.fromkeys(pkg.paths) if path not in nodes]
    found = agent.manifest(paths).by_path() if paths else {}
    if nodes:
        found |= agent.manifest(sorted(nodes), recursive=False).by_path()
    current = {path: found.get(path) for path in (*paths, *sorted(nodes))}
    removed = removed_paths(pkg.operations)
    for op in pkg.operations:
        if isinstance(op, (*NODE_OPS, SetMetaOp)):
            check_node_op(op, current, found, removed)
        elif isinstance(op, UnitStateOp):
            if transport is not None and is_checked_at_preflight(op, pkg.operations):
                check_unit_state(op, transport, timeout=timeout)
        elif isinstance(op, FILE_OPS):
            entry = current[op.path]
            if op.expect_sha256 == ABSENT:
                is_ok = entry is None
                expected = "absent"
            else:
                is_ok = entry is not None and entry.type == "file" and entry.sha256 == op.expect_sha256
                expected = f"sha256 {op.expect_sha256[:12]}"
            if not is_ok:
                raise ApplyError(
                    f"target changed since capture: {op.path} (expected {expected}, {_describe(entry)})",
                    remedy="run the repair again so the fix is rebuilt from the target's current state",
                )
        elif isinstance(op, DATA_OPS):
            entry = current[op.path]
            if entry is None or entry.type != "file":
                raise ApplyError(
                    f"target changed since capture: {op.path} "
                    f"({'a log to rotate' if op.name == 'rotate_log' else 'a data file to repair'}, "
                    f"but {_describe(entry)})"
                )
    return current
