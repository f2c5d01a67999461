"""What the unit tests' fake AgentApi implementations share.

Each test package keeps the fake that fits its tests (``apply.fakes``: a host of files with
preconditions and injected write failures; ``repair.fakes``: a tree of nodes that repair steps also
reach through commands; ``detect.fakes``: canned answers). They start from ``UnsupportedAgent`` so a
method a fake does not model fails loudly, naming the fake, instead of answering something made up.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from orchestrator.agent.api import (
    BigFile,
    DiskUsage,
    FileEntry,
    JsonlRepairResult,
    JsonlReport,
    Manifest,
    PackResult,
    Placeholder,
    RotateResult,
    UnpackResult,
)
from orchestrator.errors import AgentFailedError


def sha(data: bytes) -> str:
    """The sha256 hex digest the agent reports for ``data``."""
    return hashlib.sha256(data).hexdigest()


def not_found(op: str, path: str, host: str = "target") -> AgentFailedError:
    """What the agent on ``host`` answers for a path that does not exist."""
    return AgentFailedError(f"{host}: agent {op}: [Errno 2] No such file or directory: {path!r}",
                            host=host, op=op, code="not_found")


class UnsupportedAgent:
    """Every AgentApi method raises NotImplementedError; ``sweep_temps`` finds nothing to sweep."""

    def _unsupported(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__module__}.{type(self).__name__} has no {method}")

    def manifest(self, paths: list[str]) -> Manifest:
        raise self._unsupported("manifest")

    def pack(self, paths: list[str], *, max_file_bytes: int) -> PackResult:
        raise self._unsupported("pack")

    def unpack(
        self, remote_tar: str, placeholders: list[Placeholder], roots: list[str], *,
        manifest: Manifest | None = None,
    ) -> UnpackResult:
        raise self._unsupported("unpack")

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        raise self._unsupported("read_file")

    def write_file(
        self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
        expect_sha256: str | None = None,
    ) -> FileEntry:
        raise self._unsupported("write_file")

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        raise self._unsupported("remove_file")

    def move_file(self, src: str, dst: str) -> None:
        raise self._unsupported("move_file")

    def sweep_temps(self, dirs: list[str]) -> list[str]:
        return []

    def jsonl_check(self, path: str) -> JsonlReport:
        raise self._unsupported("jsonl_check")

    def jsonl_repair(self, path: str) -> JsonlRepairResult:
        raise self._unsupported("jsonl_repair")

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult:
        raise self._unsupported("rotate_log")

    def disk_usage(self, mount: str) -> DiskUsage:
        raise self._unsupported("disk_usage")

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]:
        raise self._unsupported("big_files")
