"""Typed results of agent calls and the interface every pipeline stage uses (``AgentApi``).

Implemented by :class:`orchestrator.agent.client.RemoteAgent` (over any Transport) and by test fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FileType = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class FileEntry:
    """Metadata of one path on a host. ``sha256`` only for regular files; ``link`` only for symlinks."""

    path: str
    type: FileType
    mode: int            # permission bits (S_IMODE), e.g. 0o644
    uid: int
    gid: int
    owner: str           # user name, or the uid as text when unknown
    group: str
    size: int
    mtime: float
    sha256: str | None = None
    link: str | None = None


PathType = Literal["absent", "file", "dir", "symlink"]


@dataclass(frozen=True)
class PathState:
    """A precondition the agent checks on the lstat of one path right before it changes it: the type,
    and whichever of content digest, link text, mode and owner are given."""

    type: PathType
    sha256: str | None = None
    link: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def as_args(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Manifest:
    entries: tuple[FileEntry, ...]
    missing: tuple[str, ...] = ()   # requested paths that do not exist

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}


@dataclass(frozen=True)
class DebEntry:
    """One path as a package's .deb ships it (its data.tar member header): the package's own word on
    the path's type, mode and owner. ``uname``/``gname`` are empty when the archive names no owner."""

    path: str
    type: FileType
    mode: int            # permission bits with setuid/setgid/sticky, e.g. 0o4755
    uid: int
    gid: int
    uname: str
    gname: str


@dataclass(frozen=True)
class DebMeta:
    entries: tuple[DebEntry, ...]
    absent: tuple[str, ...] = ()    # requested paths the package does not ship

    def by_path(self) -> dict[str, DebEntry]:
        return {e.path: e for e in self.entries}

    def answers_exactly(self, paths: Sequence[str]) -> bool:
        """Every path of ``paths`` answered exactly once, as an entry or as absent, and nothing else."""
        answered = [e.path for e in self.entries] + list(self.absent)
        return sorted(answered) == sorted(dict.fromkeys(paths))


@dataclass(frozen=True)
class Placeholder:
    """A file too large to capture: only its metadata and a bounded head/tail travel."""

    path: str
    size: int
    sha256: str | None
    head: bytes = b""
    tail: bytes = b""


@dataclass(frozen=True)
class PackResult:
    """A tar archive created on the host (``remote_tar``) with every captured file, plus the manifest
    of everything under the requested paths and the files left out as placeholders."""

    remote_tar: str
    manifest: Manifest
    placeholders: tuple[Placeholder, ...] = ()


@dataclass(frozen=True)
class JsonlReport:
    path: str
    exists: bool
    total_lines: int
    good_lines: int
    #: (1-based line number, reason) for every bad line, capped at 100 entries.
    bad_lines: tuple[tuple[int, str], ...] = ()
    #: The last line is incomplete (no newline and does not parse): typical of a crash mid-write.
    torn_tail: bool = False

    @property
    def ok(self) -> bool:
        return self.exists is False or (not self.bad_lines and not self.torn_tail)


@dataclass(frozen=True)
class JsonlRepairResult:
    path: str
    kept: int             # good lines kept unchanged, in order
    repaired: int         # lines fixed (missing closing brace, trailing garbage)
    quarantined: int      # unrecoverable lines moved to ``quarantine_path``
    quarantine_path: str | None
    backup_path: str      # copy of the file before the repair
    fragments: int = 0    # garbage around the objects of repaired lines, quarantined too (no byte lost)


@dataclass(frozen=True)
class RotateResult:
    path: str
    archive: str | None   # compressed copy (path.N.gz), verified before the original was truncated
    freed_bytes: int
    method: Literal["compress", "truncate"]


@dataclass(frozen=True)
class DiskUsage:
    mount: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    used_pct: float       # as df computes it: used / (used + avail)
    inodes_total: int
    inodes_used: int
    inodes_pct: float


@dataclass(frozen=True)
class BigFile:
    path: str
    size: int
    is_open_by_writer: bool = False


@dataclass(frozen=True)
class UnpackResult:
    written: tuple[str, ...]
    placeholders: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = field(default_factory=tuple)   # (path, reason)


class AgentApi(Protocol):
    """What the pipeline needs from a host. Every method raises ``AgentError`` (a TransportError) when
    the agent fails or answers something malformed, and the transport's errors otherwise."""

    def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = (), digests: bool = True) -> Manifest:
        """Entries of ``paths`` (lstat: symlinks are listed, never followed) and, when ``recursive``,
        of everything below them (regular files with their sha256, unless ``digests`` is false: then
        no file is read) but what ``exclude`` covers; ``missing`` lists the paths that do not exist.
        Non-recursive asks about the paths alone, whatever a directory holds."""
        ...

    def pack(self, paths: list[str], *, max_file_bytes: int, exclude: Sequence[str] = ()) -> PackResult:
        """``paths`` and everything below them but what ``exclude`` covers, packed on the host."""
        ...

    def unpack(
        self, remote_tar: str, placeholders: list[Placeholder], roots: list[str], *,
        manifest: Manifest | None = None,
    ) -> UnpackResult:
        """Extract ``remote_tar`` (uploaded into the agent's directory) at its absolute paths; every
        member and placeholder must lie under one of ``roots``. Placeholders take mode, owner and
        mtime from their ``manifest`` entry when one is given."""
        ...

    def read_file(self, path: str, *, max_bytes: int) -> bytes: ...

    def write_file(
        self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
        expect_sha256: str | None = None,
    ) -> FileEntry: ...

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None: ...

    def verify_package(self, package_id: str, document: bytes, sha256: str) -> None:
        """Refuse (AgentFailedError, code ``precondition``) unless ``document`` hashes to ``sha256``:
        the target checks the package it is about to receive is the one that was validated."""
        ...

    def move_file(self, src: str, dst: str) -> None: ...

    # Symlinks, directories, owner and mode. ``expect`` is checked on the path's lstat right before the
    # change (AgentFailedError, code ``precondition``, when it does not hold); ``None`` checks nothing
    # and makes removals of an absent path succeed, for restores that may run twice.
    def set_symlink(self, path: str, target: str, *, uid: int, gid: int,
                    expect: PathState | None) -> FileEntry:
        """Create or atomically retarget a symlink; never replaces a file or directory."""
        ...

    def remove_symlink(self, path: str, *, expect: PathState | None) -> None: ...

    def make_dir(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        """Create a directory in an existing parent (or, without ``expect``, set an existing one's
        mode and owner)."""
        ...

    def remove_dir(self, path: str, *, expect: PathState | None) -> None:
        """Remove an empty directory (``precondition`` when it is not empty)."""
        ...

    def set_meta(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        """chmod/chown a file or directory through a descriptor, lchown a symlink; content untouched."""
        ...

    def sweep_temps(self, dirs: list[str]) -> list[str]:
        """Remove temp files an interrupted replace left directly in ``dirs``; return their paths."""
        ...

    def jsonl_check(self, path: str) -> JsonlReport: ...

    def jsonl_repair(self, path: str) -> JsonlRepairResult: ...

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult: ...

    def disk_usage(self, mount: str) -> DiskUsage: ...

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]: ...


#: One read-only agent request as a probe makes it: the operation and its arguments.
AgentRead = tuple[str, dict[str, Any]]


def manifest_args(paths: Sequence[str], *, recursive: bool = True,
                  exclude: Sequence[str] = (), digests: bool = True) -> dict[str, Any]:
    """The arguments of a ``manifest`` request exactly as the client sends them, for probes that
    declare the request for a batch (``recursive``, ``exclude`` and ``digests`` only when they say
    something: the requests of plain recursive manifests stay what they always were)."""
    args: dict[str, Any] = {"paths": list(paths)}
    if not recursive:
        args["recursive"] = False
    if exclude:
        args["exclude"] = list(exclude)
    if not digests:
        args["digests"] = False
    return args


@runtime_checkable
class Prefetching(Protocol):
    """An agent that can answer several read-only requests in one call (the real client does; the
    detect stage batches its probes' reads through it)."""

    def prefetch(self, requests: Sequence[AgentRead]) -> None:
        """Raises: AgentError, TransportError."""

    def prefetch_scope(self) -> AbstractContextManager[object]:
        """What is prefetched inside the block answers only the requests made inside it."""
        ...

    def discard_prefetched(self) -> None: ...
