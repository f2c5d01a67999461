"""An in-memory AgentApi for fix-package and apply tests: a host is a dict of path -> FakeFile.

Write, remove and rotate behave like the real agent's contract: ``expect_sha256`` is a precondition
(``None``: none, ``"absent"``: must not exist, a sha256: must match), parent directories are implicit.
Faults are injected by call number (``fail_write_on={2}``: the 2nd write_file raises AgentError).
"""

from __future__ import annotations

import copy
import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.agent.api import FileEntry, Manifest, RotateResult
from orchestrator.errors import AgentError
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import UnsupportedAgent, sha

NAMES = {0: "root", 33: "www-data", 101: "app", 104: "app"}


@dataclass
class FakeFile:
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class FakeAgent(UnsupportedAgent):
    files: dict[str, FakeFile] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    #: uid/gid -> name, as the host's passwd/group would say.
    names: dict[int, str] = field(default_factory=lambda: dict(NAMES))
    fail_write_on: set[int] = field(default_factory=set)
    fail_all_writes_after: int | None = None
    mutations: list[tuple[str, str]] = field(default_factory=list)
    writes: int = 0

    def clone(self) -> FakeAgent:
        twin = copy.deepcopy(self)
        twin.mutations = []
        twin.writes = 0
        return twin

    def state(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Everything that matters for byte-for-byte comparisons."""
        return {p: (f.data, f.mode, f.uid, f.gid) for p, f in sorted(self.files.items())}

    # -- AgentApi -------------------------------------------------------------------------------
    def _all_dirs(self) -> set[str]:
        found = set(self.dirs)
        for path in [*self.files, *self.symlinks, *self.dirs]:
            parent = path.rsplit("/", 1)[0]
            while parent:
                found.add(parent)
                parent = parent.rsplit("/", 1)[0]
        return found

    def _entry(self, path: str) -> FileEntry | None:
        if path in self.files:
            f = self.files[path]
            return FileEntry(path, "file", f.mode, f.uid, f.gid, self.names.get(f.uid, str(f.uid)),
                             self.names.get(f.gid, str(f.gid)), len(f.data), 0.0, sha(f.data))
        if path in self.symlinks:
            return FileEntry(path, "symlink", 0o777, 0, 0, "root", "root", 0, 0.0,
                             link=self.symlinks[path])
        if path in self._all_dirs():
            return FileEntry(path, "dir", 0o755, 0, 0, "root", "root", 4096, 0.0)
        return None

    def manifest(self, paths: list[str]) -> Manifest:
        every = sorted({*self.files, *self.symlinks, *self._all_dirs()})
        entries: dict[str, FileEntry] = {}
        missing = []
        for path in paths:
            entry = self._entry(path)
            if entry is None:
                missing.append(path)
                continue
            entries[path] = entry
            if entry.type == "dir":
                for below in every:
                    if below.startswith(path + "/"):
                        entries[below] = self._entry(below)  # type: ignore[assignment]
        return Manifest(tuple(entries.values()), tuple(missing))

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        if path not in self.files:
            raise AgentError(f"{path}: no such file")
        data = self.files[path].data
        if len(data) > max_bytes:
            raise AgentError(f"{path}: larger than {max_bytes}")
        return data

    def _check(self, path: str, expect: str | None) -> None:
        if path in self.symlinks:
            raise AgentError(f"{path}: refusing to write through a symlink")
        current = self.files.get(path)
        if expect == "absent" and current is not None:
            raise AgentError(f"{path}: exists but should be absent")
        if expect not in (None, "absent") and (current is None or sha(current.data) != expect):
            raise AgentError(f"{path}: precondition failed")

    def write_file(
        self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
        expect_sha256: str | None = None,
    ) -> FileEntry:
        self.writes += 1
        if self.writes in self.fail_write_on or (
            self.fail_all_writes_after is not None and self.writes > self.fail_all_writes_after
        ):
            raise AgentError(f"injected failure writing {path}")
        self._check(path, expect_sha256)
        self.files[path] = FakeFile(bytes(data), mode, uid, gid)
        self.mutations.append(("write_file", path))
        entry = self._entry(path)
        assert entry is not None
        return entry

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        self._check(path, expect_sha256)
        if path not in self.files:
            raise AgentError(f"{path}: no such file")
        del self.files[path]
        self.mutations.append(("remove_file", path))

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult:
        data = self.files[path].data
        archive = None
        if method == "compress":
            archive = f"{path}.1.gz"
            self.files[archive] = FakeFile(gzip.compress(data, mtime=0), 0o640)
        self.files[path] = FakeFile(b"", self.files[path].mode, self.files[path].uid, self.files[path].gid)
        self.mutations.append(("rotate_log", path))
        return RotateResult(path, archive, len(data), method)


def systemd_transport(
    states: dict[str, str] | None = None, *, failing: Iterable[tuple[str, ...]] = ()
) -> FakeTransport:
    """A transport that answers systemctl: ``is-active`` from ``states`` (default active); any argv
    in ``failing`` exits 1."""
    failing = set(failing)
    states = states or {}

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv in failing:
            return 1, b"", b"Job failed. See journalctl -xe.\n"
        if argv[:2] == ("systemctl", "is-active"):
            state = states.get(argv[-1], "active")
            return (0 if state == "active" else 3), f"{state}\n".encode(), b""
        return 0, b"", b""

    return FakeTransport(handler, host="target")
