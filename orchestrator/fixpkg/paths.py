"""Lexical path rules for fix packages: absolute, canonical, no ``..``, under an allowed root.

Checks are purely lexical on purpose: the paths name files on the *target*, so resolving them against
the orchestrator's own filesystem would check the wrong machine. Symlinks on the target are the agent's
business at write time (it refuses to write through one).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from orchestrator.detect.sysdirs import RULES as SYSTEM_PATH_RULES
from orchestrator.errors import FixPackageError
from orchestrator.systemd.paths import UNIT_FILE_DIRS, is_unit_file

__all__ = ["SYSTEM_DIRS", "SYSTEM_FILES", "SYSTEM_NODES", "UNIT_FILE_DIRS", "check_allowed", "is_under",
           "is_unit_file", "normalise_path"]

#: The system paths (the rules of :mod:`orchestrator.detect.sysdirs`: ``/tmp``, ``/etc``, ``/usr`` ...,
#: ``/etc/shadow``, ``/etc/sudoers`` ...) whose *own* node a package may create or chmod/chown even
#: outside the allowed roots, mapped to the type of node that is (``check_allowed(..., node_meta=
#: TYPE)``). Why not widen the default roots instead: a root allows everything strictly below it, and
#: ``/tmp`` as a root would let a package write any file there (a world-writable directory, where a
#: planted file is an attack), and ``/usr`` or ``/var`` would open the whole system. This exception
#: names exact paths, only for the operations that set a node's mode and owner (never its content:
#: a ``write_file`` of ``/etc/shadow`` still needs ``/etc`` among the allowed roots), only for the
#: node type of its rule (no ``make_dir`` of ``/etc/shadow``), and each path's wanted mode and owner
#: are fixed by its rule. ``/`` is not among them: no operation may name it (:func:`normalise_path`).
SYSTEM_NODES: dict[str, str] = {rule.path: rule.type for rule in SYSTEM_PATH_RULES.values()
                                if rule.path != "/"}
SYSTEM_DIRS = frozenset(path for path, kind in SYSTEM_NODES.items() if kind == "dir")
SYSTEM_FILES = frozenset(path for path, kind in SYSTEM_NODES.items() if kind == "file")

_MAX_PATH = 4096


def normalise_path(path: str) -> str:
    """Return ``path`` in canonical form (``//`` and ``.`` collapsed, no trailing slash).

    ``..`` is refused rather than collapsed: ``/etc/a/../b`` is ``/etc/b`` only if ``/etc/a`` is not a
    symlink on the target, which cannot be known here.

    Raises:
        FixPackageError: the path is not a string, is relative, has a ``..`` component, or contains
            NUL, CR or a newline (they would corrupt journals and reports, and no config file needs them).
    """
    if not isinstance(path, str) or not path:
        raise FixPackageError(f"path {path!r} is not a non-empty string")
    if len(path) > _MAX_PATH or any(ch in path for ch in "\0\n\r"):
        raise FixPackageError(f"path {path!r} is too long or contains NUL/newline characters")
    if not path.startswith("/"):
        raise FixPackageError(f"path {path!r} is not absolute")
    if ".." in path.split("/"):
        raise FixPackageError(f"path {path!r} contains '..' (path traversal is refused)")
    # normpath keeps a leading "//" (POSIX leaves its meaning to the implementation): fold it too.
    canonical = "/" + posixpath.normpath(path).lstrip("/")
    if canonical == "/":
        raise FixPackageError("path '/' cannot be the subject of a file operation")
    return canonical


def is_under(path: str, root: str) -> bool:
    """True when canonical ``path`` is strictly below canonical ``root`` (``/etcx`` is not under ``/etc``)."""
    if root == "/":
        return path != "/"
    return path.startswith(root + "/")


def check_allowed(path: str, allowed_roots: Sequence[str], *, node_meta: str | None = None) -> str:
    """Return the canonical form of ``path`` if it lies strictly below one of ``allowed_roots``, or,
    for an operation that only creates a directory or sets a node's mode and owner (``node_meta``:
    the type of that node, ``dir`` or ``file``), if it is exactly a :data:`SYSTEM_NODES` path of
    that type.

    Raises:
        FixPackageError: the path is malformed (see :func:`normalise_path`), an allowed root is not an
            absolute canonical path, or the path is outside every allowed root (the message names both).
    """
    canonical = normalise_path(path)
    roots = [_normalise_root(root) for root in allowed_roots]
    if node_meta is not None and SYSTEM_NODES.get(canonical) == node_meta:
        return canonical
    if not any(is_under(canonical, root) for root in roots):
        shown = ", ".join(roots) or "(none)"
        raise FixPackageError(
            f"path {canonical} is outside the allowed roots ({shown})",
            remedy="add its directory to repair.allowed_roots in the config if it is meant to be repaired",
        )
    return canonical


def _normalise_root(root: str) -> str:
    if not isinstance(root, str) or not root.startswith("/") or ".." in root.split("/"):
        raise FixPackageError(f"allowed root {root!r} must be an absolute path without '..'")
    return "/" + posixpath.normpath(root).lstrip("/")
