"""The manifest of one quarantine (``manifest.json`` on the target): what was moved, and what to restore.

It lives beside the moved files, in ``<root>/<component>/<stamp>/``, and is written *before* anything
changes (status ``quarantining``) and replaced atomically by the agent at each later stage
(``quarantined``, ``released``). A crash mid-way therefore leaves a manifest that names every file
and the units' prior state, and a release puts back whatever was already moved.

Stored paths are derived from the directory and each original path, never read from the file: a
manifest edited on the target cannot point a release at files outside its directory. It is read back
through pydantic (``extra="forbid"``) like any other input from a target.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.agent.api import FileEntry
from orchestrator.agent.wire import render_errors
from orchestrator.detect.common import cap_evidence
from orchestrator.errors import QuarantineError

FORMAT = 1
MANIFEST_NAME = "manifest.json"
#: Absolute, normalised, no NUL; checked again on read.
_ABS_PATH = r"^/[^\x00]*$"
PathKind = Literal["file", "symlink", "dir"]


class Status(StrEnum):
    QUARANTINING = "quarantining"  # intent recorded; units being stopped, files being moved
    QUARANTINED = "quarantined"
    RELEASED = "released"


@dataclass(frozen=True)
class PathRecord:
    """One path as it was before the quarantine. Directories stay in place; files and symlinks move."""

    path: str
    kind: PathKind
    mode: int
    uid: int
    gid: int
    sha256: str | None = None
    link: str | None = None

    @classmethod
    def from_entry(cls, entry: FileEntry) -> PathRecord:
        if entry.type == "other":
            raise ValueError(f"{entry.path} is a special file")
        return cls(entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.sha256, entry.link)

    def matches(self, entry: FileEntry | None) -> bool:
        """``entry`` (a manifest entry from the agent) is this path exactly: kind, owner, and content,
        mode for files, target for symlinks (a symlink's own mode means nothing on Linux)."""
        if entry is None or entry.type != self.kind or (entry.uid, entry.gid) != (self.uid, self.gid):
            return False
        if self.kind == "symlink":
            return entry.link == self.link
        return entry.mode == self.mode and (self.kind == "dir" or entry.sha256 == self.sha256)


@dataclass(frozen=True)
class UnitRecord:
    """A unit's state when the quarantine began, as ``systemctl show`` reported it."""

    unit: str
    load_state: str
    active_state: str
    unit_file_state: str

    @property
    def was_enabled(self) -> bool:
        return self.unit_file_state in ("enabled", "enabled-runtime")

    @property
    def was_active(self) -> bool:
        return self.active_state in ("active", "activating", "reloading")


@dataclass(frozen=True)
class QuarantineRecord:
    component: str
    directory: str
    status: Status
    reason: str
    quarantined_at: str
    host: str
    paths: tuple[PathRecord, ...]
    units: tuple[UnitRecord, ...]
    released_at: str | None = None
    #: Paths found but left in place (special files), for the operator.
    skipped: tuple[str, ...] = ()
    #: sha256 of the manifest file this record was read from (the precondition of rewriting it);
    #: not part of the manifest itself.
    source_sha256: str | None = field(default=None, compare=False)

    @property
    def manifest_path(self) -> str:
        return posixpath.join(self.directory, MANIFEST_NAME)

    @property
    def moved(self) -> tuple[PathRecord, ...]:
        """The files and symlinks (what the quarantine moves), in path order."""
        return tuple(p for p in self.paths if p.kind != "dir")

    def stored_path(self, path: str) -> str:
        """Where ``path`` sits while quarantined: its absolute path below the directory."""
        return self.directory + path

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["source_sha256"]
        return {"format": FORMAT, **data, "status": str(self.status)}

    def to_json(self) -> bytes:
        return (json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n").encode()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PathWire(_Strict):
    path: str = Field(pattern=_ABS_PATH)
    kind: PathKind
    mode: int = Field(ge=0, le=0o7777)
    uid: int = Field(ge=0, lt=2**32)
    gid: int = Field(ge=0, lt=2**32)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    link: str | None = None


class _UnitWire(_Strict):
    unit: str
    load_state: str
    active_state: str
    unit_file_state: str


class _RecordWire(_Strict):
    format: Literal[1]
    component: str
    directory: str
    status: Status
    reason: str
    quarantined_at: str
    host: str
    paths: list[_PathWire]
    units: list[_UnitWire]
    released_at: str | None = None
    skipped: list[str] = Field(default_factory=list)


def parse_record(data: bytes, *, manifest_path: str) -> QuarantineRecord:
    """Read a manifest written by :meth:`QuarantineRecord.to_json` and check it belongs where it was
    found (its directory, normalised paths).

    Raises:
        QuarantineError: not JSON, not a manifest, or inconsistent with its location.
    """

    def refuse(detail: str) -> QuarantineError:
        return QuarantineError(
            f"quarantine manifest {manifest_path} is unusable: {cap_evidence(detail, 600)}",
            remedy="inspect the directory by hand; vmrepair will not guess what it held")

    try:
        wire = _RecordWire.model_validate(json.loads(data))
    except (ValueError, RecursionError) as exc:
        detail = render_errors(exc) if isinstance(exc, ValidationError) else "not JSON"
        raise refuse(detail) from exc
    directory = posixpath.dirname(manifest_path)
    if wire.directory != directory:
        raise refuse(f"it names another directory ({wire.directory})")
    bad = [p.path for p in wire.paths if posixpath.normpath(p.path) != p.path or p.path == "/"]
    if bad:
        raise refuse(f"paths are not normalised: {bad[:3]}")
    return QuarantineRecord(
        component=wire.component, directory=directory, status=wire.status, reason=wire.reason,
        quarantined_at=wire.quarantined_at, host=wire.host,
        paths=tuple(PathRecord(p.path, p.kind, p.mode, p.uid, p.gid, p.sha256, p.link) for p in wire.paths),
        units=tuple(UnitRecord(u.unit, u.load_state, u.active_state, u.unit_file_state) for u in wire.units),
        released_at=wire.released_at, skipped=tuple(wire.skipped),
        source_sha256=hashlib.sha256(data).hexdigest())
