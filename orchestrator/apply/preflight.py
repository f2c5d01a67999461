"""Preflight: the target must still be exactly as it was captured before anything is changed on it.

A fix validated against one state of a file says nothing about another: if a file changed since capture
(someone edited it, a package upgrade ran), the package is refused rather than merged.
"""

from __future__ import annotations

from orchestrator.agent.api import AgentApi, FileEntry
from orchestrator.errors import ApplyError
from orchestrator.fixpkg.ops import ABSENT, DATA_OPS, FILE_OPS
from orchestrator.fixpkg.package import FixPackage


def _describe(entry: FileEntry | None) -> str:
    if entry is None:
        return "it is absent"
    if entry.type != "file":
        return f"it is a {entry.type}"
    return f"sha256 {(entry.sha256 or '?')[:12]}"


def preflight(pkg: FixPackage, agent: AgentApi) -> dict[str, FileEntry | None]:
    """Check every operation's precondition on the target; return the target's entry for each path.

    Reads only (one manifest call).

    Raises:
        ApplyError: ``target changed since capture: PATH (...)`` for the first path whose state differs
            from the precondition (content, absence, type) or a log to rotate that is not a file.
        AgentError, TransportError: the manifest could not be taken.
    """
    paths = list(dict.fromkeys(pkg.paths))
    found = agent.manifest(paths).by_path() if paths else {}
    current = {path: found.get(path) for path in paths}
    for op in pkg.operations:
        if isinstance(op, FILE_OPS):
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
