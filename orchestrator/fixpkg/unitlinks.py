"""The symlinks ``systemctl enable|disable|mask|unmask`` writes, so a package that replays the
``unit_state`` does not also copy them as symlink operations (they would be set twice, and a rollback
of the state would fight the rollback of the links).

Lexical and confined to ``/etc/systemd/system`` (where those verbs write without ``--runtime``). A
change there is the unit's when the path is a symlink (or absent) on both sides and it is:

- the unit's own name directly in the directory (``x.service -> /dev/null``, a mask, or a link to a
  unit file outside the search path);
- in a ``*.wants``/``*.requires``/``*.upholds`` directory, or directly in the directory as an alias,
  named after the unit or pointing to a file named after it, or sharing the unit's name before the
  suffix (``ssh.socket`` that ``Also=`` in ``ssh.service`` enables with it).

A dependency directory (``multi-user.target.wants``) that was created or removed along with such links,
and holds no other change, goes too: ``systemctl enable`` creates it on the target as it did in the VM.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Set

from orchestrator.agent.api import FileEntry

UNIT_LINK_DIR = "/etc/systemd/system"
_DEPS_DIR_RE = re.compile(r"^[^/]+\.(wants|requires|upholds)$")


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _is_unit_link(path: str, entries: list[FileEntry], units: Set[str]) -> bool:
    parent, name = posixpath.split(path)
    in_deps = posixpath.dirname(parent) == UNIT_LINK_DIR and _DEPS_DIR_RE.match(posixpath.basename(parent))
    if not (parent == UNIT_LINK_DIR or in_deps) or any(e.type != "symlink" for e in entries):
        return False
    pointed = {posixpath.basename(e.link or "") for e in entries}
    return any(name == unit or unit in pointed or _stem(name) == _stem(unit) for unit in units)


def _is_deps_dir(path: str, entries: list[FileEntry]) -> bool:
    parent, name = posixpath.split(path)
    is_deps = parent == UNIT_LINK_DIR and bool(_DEPS_DIR_RE.match(name))
    return is_deps and all(e.type == "dir" for e in entries)


def drop_unit_links(
    captured: dict[str, FileEntry], current: dict[str, FileEntry], units: Set[str]
) -> tuple[dict[str, FileEntry], dict[str, FileEntry]]:
    """``captured`` and ``current`` without the paths whose change the unit states of ``units``
    explain (see the module docstring); unchanged when ``units`` is empty."""
    if not units:
        return captured, current
    changed = {p for p in captured.keys() | current.keys() if captured.get(p) != current.get(p)}

    def entries(path: str) -> list[FileEntry]:
        return [e for e in (captured.get(path), current.get(path)) if e is not None]

    explained = {p for p in changed if _is_unit_link(p, entries(p), units)}
    for path in sorted(changed - explained):
        below = {p for p in changed if p.startswith(path + "/")}
        # Only a directory created or removed (not one whose mode changed) along with explained links.
        if (path in captured) != (path in current) and _is_deps_dir(path, entries(path)) \
                and below and below <= explained:
            explained.add(path)
    return ({p: e for p, e in captured.items() if p not in explained},
            {p: e for p, e in current.items() if p not in explained})
