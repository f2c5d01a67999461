"""Lexical path checks: where a repair step may act.

Paths are compared as text after normalisation, never by following symlinks on the orchestrator side
(the files live in the VM). Symlinked *directories* inside the VM are caught separately by
:meth:`orchestrator.steps.io.StepIO.require_real_dirs` before anything is moved or written.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

from orchestrator.model import Component


def normalize(path: str) -> str | None:
    """``path`` with ``.``/``..``/``//`` resolved lexically, or None when it is not absolute (or has
    NUL). ``/a/b/../../../etc`` becomes ``/etc``, so a ``..`` cannot climb out of a root unnoticed."""
    if not path.startswith("/") or "\0" in path:
        return None
    # posixpath.normpath keeps a leading '//' (POSIX leaves it implementation-defined).
    return "/" + posixpath.normpath(path).lstrip("/")


def is_within(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both normalised)."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


def within_any(path: str, roots: Iterable[str]) -> bool:
    return any(is_within(path, root) for root in roots)


def component_roots(component: Component, scope: str = "component") -> tuple[str, ...]:
    """The roots a step may change for a component: ``component`` = config_paths + unit_paths,
    ``component_config`` = config_paths, ``component_units`` = unit_paths."""
    if scope == "component_config":
        return component.config_paths
    if scope == "component_units":
        return component.unit_paths
    return component.config_paths + component.unit_paths


def own_paths(component: Component) -> tuple[str, ...]:
    """Every path of the component: config, unit, data, log and writable paths (where ``make_dir`` and
    ``set_meta`` may act on one path's own mode and owner)."""
    return tuple(dict.fromkeys((*component.config_paths, *component.unit_paths, *component.data_paths,
                                *component.log_paths, *component.writable_paths)))


def ancestors(path: str, roots: Sequence[str]) -> list[str]:
    """The directories from the (deepest) root containing ``path`` down to ``path``'s parent, root
    included: each must be a real directory in the VM, or a move/write could land outside the root."""
    containing = [r for r in roots if is_within(path, r) and path != r]
    if not containing:
        return []
    root = max(containing, key=len).rstrip("/") or "/"
    found = [root]
    current = root
    for part in path[len(root):].strip("/").split("/")[:-1]:
        current = posixpath.join(current, part)
        found.append(current)
    return found
