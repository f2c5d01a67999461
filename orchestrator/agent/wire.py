"""The agent's answers as pydantic models: the one place where its untrusted JSON is checked.

Every model is strict (no ``"12"`` for 12, no ``1`` for ``true``), forbids unknown keys and bounds
every string and list, so a compromised or garbage-filled host can only make a call fail with
:class:`~orchestrator.errors.AgentError`, never hand the pipeline a half-valid object. The ``to_api``
methods turn a checked answer into the plain dataclasses of :mod:`orchestrator.agent.api`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from orchestrator.agent.api import (
    BigFile,
    DebEntry,
    DebMeta,
    DiskUsage,
    FileEntry,
    FileType,
    JsonlRepairResult,
    JsonlReport,
    Manifest,
    Placeholder,
    RotateResult,
    UnpackResult,
)
from orchestrator.agent.errors import AgentErrorCode
from orchestrator.agent.remote import vmrepair_agent as agent

#: The agent script's own caps, so the two can never disagree.
MAX_ENTRIES: int = agent.MAX_ENTRIES
SAMPLE_BYTES: int = agent.SAMPLE_BYTES
MAX_BAD_LINES: int = agent.MAX_BAD_LINES
MAX_DEB_PATHS: int = agent.MAX_DEB_PATHS
MAX_PATH = 4096


def _bounded(limit: int) -> Any:
    # Not StringConstraints: pydantic-core then needs valid UTF-8, and file names that are not
    # (undecodable bytes arrive as lone surrogates, which os.* turn back into the same bytes) must pass.
    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters")
        return value

    return AfterValidator(check)


def _host_path(value: str) -> str:
    """An absolute, normalised POSIX path, as the agent is asked for and answers with."""
    parts = value.split("/")[1:]
    if not value.startswith("/") or "\0" in value or (value != "/" and any(
        part in ("", ".", "..") for part in parts
    )):
        raise ValueError("not an absolute, normalised path")
    return value


def _base64(limit: int | None) -> Any:
    def decode(value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("base64 text expected")  # noqa: TRY004 - pydantic wants ValueError
        if limit is not None and len(value) > 4 * (limit // 3 + 1):
            raise ValueError(f"more than {limit} bytes")
        try:
            data = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError("not valid base64") from exc
        if limit is not None and len(data) > limit:
            raise ValueError(f"more than {limit} bytes")
        return data

    return BeforeValidator(decode)


HostPath = Annotated[str, _bounded(MAX_PATH), AfterValidator(_host_path)]
AnyText = Annotated[str, _bounded(MAX_PATH)]
Name = Annotated[str, _bounded(256)]
Reason = Annotated[str, _bounded(1000)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
Sample = Annotated[bytes, _base64(SAMPLE_BYTES)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FailedAnswer(_Wire):
    ok: Literal[False]
    error: Annotated[str, _bounded(4000)]
    code: AgentErrorCode


class FileEntryWire(_Wire):
    path: HostPath
    type: FileType
    mode: Annotated[int, Field(ge=0, le=0o7777)]
    uid: Count
    gid: Count
    owner: Name
    group: Name
    size: Count
    mtime: float
    sha256: Sha256 | None = None
    link: AnyText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # A regular file may lack a hash only as a pack placeholder (checked by PackWire); a plain
        # manifest answer requires it (ManifestWire).
        if self.sha256 is not None and self.type != "file":
            raise ValueError("sha256 must be given for regular files and only for them")
        if (self.type == "symlink") != (self.link is not None):
            raise ValueError("link must be given for symlinks and only for them")
        return self

    def to_api(self) -> FileEntry:
        return FileEntry(**self.model_dump())


class ManifestWire(_Wire):
    """Entries as a pack answer carries them: placeholders (files over the cap) have no hash."""

    entries: Annotated[list[FileEntryWire], Field(max_length=MAX_ENTRIES)]
    missing: Annotated[list[HostPath], Field(max_length=MAX_ENTRIES)]

    def to_api(self) -> Manifest:
        return Manifest(tuple(e.to_api() for e in self.entries), tuple(self.missing))


class HashedManifestWire(ManifestWire):
    """A plain ``manifest`` answer: every regular file must carry its sha256."""

    @model_validator(mode="after")
    def _hashed(self) -> Self:
        for e in self.entries:
            if e.type == "file" and e.sha256 is None:
                raise ValueError(f"{e.path}: sha256 must be given for regular files and only for them")
        return self


class PlaceholderWire(_Wire):
    path: HostPath
    size: Count
    sha256: Sha256 | None
    head_b64: Sample
    tail_b64: Sample

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if max(len(self.head_b64), len(self.tail_b64)) > self.size:
            raise ValueError("head or tail longer than the file")
        return self

    def to_api(self) -> Placeholder:
        return Placeholder(self.path, self.size, self.sha256, self.head_b64, self.tail_b64)


class PackWire(_Wire):
    remote_tar: HostPath
    manifest: ManifestWire
    placeholders: Annotated[list[PlaceholderWire], Field(max_length=MAX_ENTRIES)]

    @model_validator(mode="after")
    def _unhashed_are_placeholders(self) -> Self:
        placeholders = {p.path for p in self.placeholders}
        for e in self.manifest.entries:
            if e.type == "file" and e.sha256 is None and e.path not in placeholders:
                raise ValueError(f"{e.path}: sha256 missing for a file that is not a placeholder")
        return self


class FailedPath(_Wire):
    path: AnyText   # a hostile member name as it was in the archive, not necessarily a path
    reason: Reason


class UnpackWire(_Wire):
    written: list[HostPath]
    placeholders: list[HostPath]
    failed: list[FailedPath]

    def to_api(self) -> UnpackResult:
        return UnpackResult(
            tuple(self.written), tuple(self.placeholders), tuple((f.path, f.reason) for f in self.failed)
        )


class ReadWire(_Wire):
    data_b64: Annotated[bytes, _base64(None)]


class DiscardWire(_Wire):
    removed: Count


class BadLine(_Wire):
    line: Annotated[int, Field(ge=1)]
    reason: Reason


class JsonlReportWire(_Wire):
    path: HostPath
    exists: bool
    total_lines: Count
    good_lines: Count
    bad_lines: Annotated[list[BadLine], Field(max_length=MAX_BAD_LINES)]
    torn_tail: bool

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.good_lines + len(self.bad_lines) > self.total_lines or any(
            b.line > self.total_lines for b in self.bad_lines
        ):
            raise ValueError("line counts do not add up")
        return self

    def to_api(self) -> JsonlReport:
        bad = tuple((b.line, b.reason) for b in self.bad_lines)
        return JsonlReport(self.path, self.exists, self.total_lines, self.good_lines, bad, self.torn_tail)


class JsonlRepairWire(_Wire):
    path: HostPath
    kept: Count
    repaired: Count
    quarantined: Count
    #: Bytes around the objects of repaired lines, quarantined too (older agents: 0).
    fragments: Count = 0
    quarantine_path: HostPath | None
    backup_path: HostPath

    def to_api(self) -> JsonlRepairResult:
        return JsonlRepairResult(**self.model_dump())


class RotateWire(_Wire):
    path: HostPath
    archive: HostPath | None
    freed_bytes: int    # may be negative when a writer appended while we rotated
    method: Literal["compress", "truncate"]

    def to_api(self) -> RotateResult:
        return RotateResult(**self.model_dump())


class FingerprintWire(_Wire):
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    racy: bool
    files: Annotated[int, Field(ge=0)]


class DebEntryWire(_Wire):
    path: HostPath
    type: FileType
    mode: Annotated[int, Field(ge=0, le=0o7777)]
    uid: Count
    gid: Count
    uname: Name
    gname: Name

    def to_api(self) -> DebEntry:
        return DebEntry(**self.model_dump())


class DebMetaWire(_Wire):
    entries: Annotated[list[DebEntryWire], Field(max_length=MAX_DEB_PATHS)]
    absent: Annotated[list[HostPath], Field(max_length=MAX_DEB_PATHS)]

    def to_api(self) -> DebMeta:
        return DebMeta(tuple(e.to_api() for e in self.entries), tuple(self.absent))


class DebFileWire(_Wire):
    """A ``deb_file`` answer: the file's bytes when the package ships a regular file there."""

    found: bool
    data_b64: Annotated[bytes, _base64(None)] | None = None

    @model_validator(mode="after")
    def _data_with_found(self) -> Self:
        if self.found != (self.data_b64 is not None):
            raise ValueError("data_b64 must be given when found is true, and only then")
        return self


class HttpStatusWire(_Wire):
    #: None: no HTTP answer at all (refused, reset, timed out, TLS failed); ``error`` says which.
    status: Annotated[int, Field(ge=100, le=599)] | None
    error: Annotated[str, Field(max_length=1000)] | None


class DiskUsageWire(_Wire):
    mount: HostPath
    size_bytes: Count
    used_bytes: Count
    avail_bytes: Count
    used_pct: Percent
    inodes_total: Count
    inodes_used: Count
    inodes_pct: Percent

    def to_api(self) -> DiskUsage:
        return DiskUsage(**self.model_dump())


class BigFileWire(_Wire):
    path: HostPath
    size: Count
    is_open_by_writer: bool

    def to_api(self) -> BigFile:
        return BigFile(**self.model_dump())


class BigFilesWire(_Wire):
    files: Annotated[list[BigFileWire], Field(max_length=10_000)]


def render_errors(exc: ValidationError, *, limit: int = 3) -> str:
    """``result.entries.3.size: Input should be ...`` for the first few errors, without the input
    values (untrusted, possibly huge)."""
    parts = [
        f"{'.'.join(str(loc) for loc in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
