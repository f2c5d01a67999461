"""Annotated types for config values that parse but can still make no sense; each one is refused when
the file loads, with a message pydantic renders under the key's path."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt

from orchestrator.systemd.argv import UNIT_NAME_HELP, is_unit_name


def _absolute(path: Path) -> Path:
    # A relative path would be read against whatever directory vmrepair was started in (the daemon's
    # is /): the audit log or the state dir would silently land somewhere else.
    if not path.is_absolute():
        raise ValueError(f"not an absolute path: {str(path)!r} (write it from /)")
    return path


def _allowed_root(root: str) -> str:
    if not root.startswith("/"):
        raise ValueError(f"{root!r}: not an absolute path")
    if root == "/":
        raise ValueError("'/': the whole file system cannot be an allowed root; name the directories "
                         "fixes may change (/etc, /opt, ...)")
    # Roots are compared as path prefixes: '/etc/../root' or '/etc/' would not mean what they say.
    normal = "/" + posixpath.normpath(root).lstrip("/")
    if normal != root or "\0" in root:
        raise ValueError(f"{root!r}: not a normalized path (write it as {normal!r})")
    return root


#: Longest ``ignore_paths`` entry (PATH_MAX).
IGNORED_PATH_MAX = 4096


def _ignored_path(path: str) -> str:
    if not path.startswith("/") or "\0" in path or len(path) > IGNORED_PATH_MAX:
        raise ValueError(f"{path[:80]!r}: not an absolute path (at most {IGNORED_PATH_MAX} characters)")
    if path == "/":
        raise ValueError("'/': ignoring the whole file system would leave nothing to watch")
    # Compared as path prefixes: '/etc/../root' or '/etc/' would not mean what they say.
    if ".." in path.split("/"):
        raise ValueError(f"{path[:80]!r}: '..' is not allowed")
    normal = "/" + posixpath.normpath(path).lstrip("/")
    if normal != path:
        raise ValueError(f"{path[:80]!r}: not a normalized path (write it as {normal[:80]!r})")
    return path


def _unit_name(name: str) -> str:
    if not is_unit_name(name):
        raise ValueError(f"not a systemd unit name: {name[:80]!r} ({UNIT_NAME_HELP})")
    return name


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
#: A directory fix packages may touch: absolute, normalized, never ``/`` itself.
AllowedRoot = Annotated[str, AfterValidator(_allowed_root)]
#: A path ``watch.ignore_paths`` drops with everything below it: absolute, normalized, no ``..``, not ``/``.
IgnoredPath = Annotated[str, AfterValidator(_ignored_path)]
#: A user id as the kernel has them (``(uid_t)-1`` means "no uid"); bools and strings are not uids.
Uid = Annotated[StrictInt, Field(ge=0, le=2**32 - 2)]
#: A unit name systemctl cannot read as an option (``-x``) or as anything but one unit.
UnitName = Annotated[str, AfterValidator(_unit_name)]
