"""Fix package operations on filesystem nodes other than regular-file content: symlinks, directories,
and mode/owner changes of any kind of path. Their JSON form is in :mod:`.ops`' docstring.

Each carries the captured state of its path as a precondition, checked by the agent on the lstat of
the path (its parents walked without following symlinks) right before it acts. A symlink's target is
text the package writes, never a path anything here resolves: it may dangle, be relative, or name a
directory; it only has to be storable (no NUL, no line breaks, at most :data:`MAX_LINK_TARGET` bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.paths import normalise_path

#: PATH_MAX - 1: the longest link text symlink(2) takes on Linux.
MAX_LINK_TARGET = 4095
NODE_KINDS = ("file", "dir", "symlink")
#: What Linux reports as the mode of every symlink (lchmod does not exist there).
SYMLINK_MODE = 0o777
_MAX_ID = 2**32 - 2   # (uid_t)-1 means "unchanged" to chown(2): never a real owner


def check_canonical(path: str) -> None:
    """Raises: FixPackageError when ``path`` is not canonical (see :func:`.paths.normalise_path`)."""
    if normalise_path(path) != path:
        raise FixPackageError(f"path {path!r} is not in canonical form")


def check_link_target(path: str, target: str, key: str = "target") -> None:
    """Raises: FixPackageError when ``target`` cannot be a symlink's text in a package."""
    if not isinstance(target, str) or not target:
        raise FixPackageError(f"{path}: {key} must be non-empty link text")
    is_long = len(target.encode("utf-8", "surrogateescape")) > MAX_LINK_TARGET
    if is_long or any(ch in target for ch in "\0\n\r"):
        raise FixPackageError(f"{path}: {key} {target[:80]!r} is too long or contains NUL/newlines")


def check_owner_mode(path: str, mode: int, uid: int, gid: int, prefix: str = "") -> None:
    if not 0 <= mode <= 0o7777:
        raise FixPackageError(f"{path}: {prefix}mode {mode!r} is not a permission mode")
    if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
        raise FixPackageError(f"{path}: {prefix}uid/gid {uid}/{gid} out of range")


@dataclass(frozen=True)
class SymlinkOp:
    """Create (``expect_target`` None: the path must be absent) or retarget a symlink, atomically."""

    path: str
    target: str
    uid: int
    gid: int
    expect_target: str | None
    name: ClassVar[str] = "symlink"

    def __post_init__(self) -> None:
        check_canonical(self.path)
        check_link_target(self.path, self.target)
        check_owner_mode(self.path, 0, self.uid, self.gid)
        if self.expect_target is not None:
            check_link_target(self.path, self.expect_target, "expect_target")


@dataclass(frozen=True)
class RemoveSymlinkOp:
    """Remove a symlink that still points where it did at capture (dangling or not)."""

    path: str
    expect_target: str
    name: ClassVar[str] = "remove_symlink"

    def __post_init__(self) -> None:
        check_canonical(self.path)
        check_link_target(self.path, self.expect_target, "expect_target")


@dataclass(frozen=True)
class MakeDirOp:
    """Create a directory that was absent at capture, with this mode and owner. Its parent must exist
    or be created by an earlier ``make_dir`` of the same package."""

    path: str
    mode: int
    uid: int
    gid: int
    name: ClassVar[str] = "make_dir"

    def __post_init__(self) -> None:
        check_canonical(self.path)
        check_owner_mode(self.path, self.mode, self.uid, self.gid)


@dataclass(frozen=True)
class RemoveDirOp:
    """Remove a directory, which must be empty by then (its content goes in earlier operations)."""

    path: str
    name: ClassVar[str] = "remove_dir"

    def __post_init__(self) -> None:
        check_canonical(self.path)


@dataclass(frozen=True)
class SetOwnerModeOp:
    """chmod/chown of a file, directory or symlink without touching its content.

    The precondition is the captured type, mode and owner, plus the content (``expect_sha256``, files
    only) or link text (``expect_target``, symlinks only). A symlink's mode cannot change on Linux, so
    for one ``mode`` must equal ``expect_mode`` and only the owner changes (lchown).
    """

    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    expect_mode: int
    expect_uid: int
    expect_gid: int
    expect_sha256: str | None
    expect_target: str | None
    name: ClassVar[str] = "set_owner_mode"

    def __post_init__(self) -> None:
        check_canonical(self.path)
        if self.kind not in NODE_KINDS:
            raise FixPackageError(f"{self.path}: kind {self.kind!r} not in {NODE_KINDS}")
        check_owner_mode(self.path, self.mode, self.uid, self.gid)
        check_owner_mode(self.path, self.expect_mode, self.expect_uid, self.expect_gid, "expect_")
        if (self.mode, self.uid, self.gid) == (self.expect_mode, self.expect_uid, self.expect_gid):
            raise FixPackageError(f"{self.path}: set_owner_mode changes nothing")
        is_file, is_link = self.kind == "file", self.kind == "symlink"
        if is_file != (self.expect_sha256 is not None):
            raise FixPackageError(f"{self.path}: expect_sha256 is required for a file and only for one")
        if self.expect_sha256 is not None and not _is_sha256(self.expect_sha256):
            raise FixPackageError(f"{self.path}: expect_sha256 {self.expect_sha256!r} is not a hex sha256")
        if is_link != (self.expect_target is not None):
            raise FixPackageError(f"{self.path}: expect_target is required for a symlink and only for one")
        if self.expect_target is not None:
            check_link_target(self.path, self.expect_target, "expect_target")
        if is_link and self.mode != self.expect_mode:
            raise FixPackageError(f"{self.path}: a symlink's mode cannot be changed (Linux has no lchmod)")


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


NodeOp = SymlinkOp | RemoveSymlinkOp | MakeDirOp | RemoveDirOp | SetOwnerModeOp
NODE_OPS = (SymlinkOp, RemoveSymlinkOp, MakeDirOp, RemoveDirOp, SetOwnerModeOp)
