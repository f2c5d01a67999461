"""RemoteAgent: :class:`~orchestrator.agent.api.AgentApi` over any Transport.

How a request reaches the agent (upload, the long-lived server, batches, size caps) is
:class:`~orchestrator.agent.rpc.AgentRpc`'s; this module holds the typed operations. The agent's
answer is untrusted: each one is parsed by the strict models of :mod:`orchestrator.agent.wire`, and
then checked against the request (no paths outside what was asked, hashes that match what was sent,
archives only in ``remote_dir``).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.agent.api import (
    BigFile,
    DebMeta,
    DiskUsage,
    FileEntry,
    JsonlRepairResult,
    JsonlReport,
    Manifest,
    PackResult,
    PathState,
    Placeholder,
    RotateResult,
    UnpackResult,
    manifest_args,
)
from orchestrator.agent.requests import (
    PACK_NAME,
    READ_ANSWER_CAP,
    clean,
    is_under,
    placeholder_spec,
)
from orchestrator.agent.rpc import AgentRpc
from orchestrator.agent.wire import (
    BigFilesWire,
    DebFileWire,
    DebMetaWire,
    DiscardWire,
    DiskUsageWire,
    FileEntryWire,
    FingerprintWire,
    HashedManifestWire,
    HttpStatusWire,
    JsonlRepairWire,
    JsonlReportWire,
    ManifestWire,
    PackWire,
    ReadWire,
    RotateWire,
    UnpackWire,
)
from orchestrator.errors import AgentError

if TYPE_CHECKING:
    from orchestrator.agent.api import AgentApi


class RemoteAgent(AgentRpc):
    """The agent's operations, each answer checked against its request.

    Raises (from every method):
        AgentFailedError: the agent refused or failed the operation; ``code`` says why
            (``precondition`` when the host changed since capture).
        AgentError: the agent crashed or answered something malformed, oversized or inconsistent
            with the request.
        TransportError: running the agent or copying a file failed (the transport's errors).
    """

    def _same_dir(self, op: str, path: str, sibling: str | None, infix: str) -> None:
        """``sibling`` (backup, archive ...) must sit beside ``path`` and be named after it."""
        if sibling is not None:
            head, name = posixpath.split(path)
            self._expect(op, posixpath.dirname(sibling) == head
                         and posixpath.basename(sibling).startswith(name + infix),
                         f"{sibling!r} is not beside {path!r}")

    def _manifest_checked(self, op: str, wire: ManifestWire, paths: Sequence[str],
                          exclude: Sequence[str] = ()) -> Manifest:
        stray = [e.path for e in wire.entries
                 if not is_under(e.path, paths) or (exclude and is_under(e.path, exclude))]
        stray += [m for m in wire.missing if m not in paths]
        self._expect(op, not stray, f"paths that were not asked for: {stray[:3]!r}")
        return wire.to_api()

    # -- AgentApi -------------------------------------------------------------------------------

    def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = (), digests: bool = True) -> Manifest:
        answer = self._call("manifest", manifest_args(paths, recursive=recursive, exclude=exclude,
                                                      digests=digests))
        wire = self._parse("manifest", HashedManifestWire if digests else ManifestWire, answer)
        manifest = self._manifest_checked("manifest", wire, paths, exclude)
        if not recursive:
            stray = [e.path for e in manifest.entries if e.path not in paths]
            self._expect("manifest", not stray, f"entries below the paths asked for: {stray[:3]!r}")
        return manifest

    def pack(self, paths: list[str], *, max_file_bytes: int, exclude: Sequence[str] = ()) -> PackResult:
        args: dict[str, object] = {"paths": list(paths), "max_file_bytes": max_file_bytes}
        if exclude:
            args["exclude"] = list(exclude)
        answer = self._call("pack", args)
        wire = self._parse("pack", PackWire, answer)
        is_ours = (posixpath.dirname(wire.remote_tar) == self.remote_dir
                   and PACK_NAME.fullmatch(posixpath.basename(wire.remote_tar)) is not None)
        self._expect("pack", is_ours, f"archive {wire.remote_tar!r} is not a pack file in {self.remote_dir}")
        self._leftovers.add(wire.remote_tar)
        manifest = self._manifest_checked("pack", wire.manifest, paths, exclude)
        files = {e.path: e for e in manifest.entries if e.type == "file"}
        for ph in wire.placeholders:
            match = files.get(ph.path)
            self._expect("pack", match is not None and (match.size, match.sha256) == (ph.size, ph.sha256),
                         f"placeholder {ph.path!r} does not match its manifest entry")
        return PackResult(wire.remote_tar, manifest, tuple(p.to_api() for p in wire.placeholders))

    def unpack(
        self, remote_tar: str, placeholders: list[Placeholder], roots: list[str], *,
        manifest: Manifest | None = None,
    ) -> UnpackResult:
        entries = manifest.by_path() if manifest is not None else {}
        specs = [placeholder_spec(p, entries.get(p.path)) for p in placeholders]
        answer = self._call("unpack", {"tar": remote_tar, "roots": list(roots), "placeholders": specs})
        wire = self._parse("unpack", UnpackWire, answer)
        self._leftovers.discard(remote_tar)  # the agent deletes the archive once it has read it
        stray = [p for p in wire.written + wire.placeholders if not is_under(p, roots)]
        self._expect("unpack", not stray, f"wrote outside the roots: {stray[:3]!r}")
        return wire.to_api()

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        cap = 4 * (max_bytes // 3 + 1) + 4096
        if cap > READ_ANSWER_CAP:
            raise AgentError(f"{self.host}: read_file of up to {max_bytes} bytes exceeds the answer cap;"
                             " use fetch()", host=self.host)
        answer = self._call("read_file", {"path": path, "max_bytes": max_bytes}, max_output=cap)
        data = self._parse("read_file", ReadWire, answer).data_b64
        self._expect("read_file", len(data) <= max_bytes, f"{len(data)} bytes, over the {max_bytes} asked")
        return data

    def write_file(
        self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
        expect_sha256: str | None = None,
    ) -> FileEntry:
        args = {"path": path, "data_b64": base64.b64encode(data).decode("ascii"), "mode": mode,
                "uid": uid, "gid": gid, "expect_sha256": expect_sha256}
        entry = self._parse("write_file", FileEntryWire, self._call("write_file", args)).to_api()
        digest = hashlib.sha256(data).hexdigest()
        self._expect("write_file", (entry.path, entry.type, entry.sha256, entry.size)
                     == (path, "file", digest, len(data)), f"wrote {entry.path!r} with other content")
        return entry

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        answer = self._call("remove_file", {"path": path, "expect_sha256": expect_sha256})
        self._expect("remove_file", answer is None, "expected a null result")

    def _node_call(self, op: str, args: dict[str, Any], expect: PathState | None) -> Any:
        return self._call(op, {**args, "expect": None if expect is None else expect.as_args()})

    def _node_entry(self, op: str, answer: object, path: str, kind: str) -> FileEntry:
        entry = self._parse(op, FileEntryWire, answer).to_api()
        self._expect(op, (entry.path, entry.type) == (path, kind),
                     f"answered about {entry.path!r} ({entry.type})")
        return entry

    def set_symlink(self, path: str, target: str, *, uid: int, gid: int,
                    expect: PathState | None) -> FileEntry:
        args = {"path": path, "target": target, "uid": uid, "gid": gid}
        entry = self._node_entry("set_symlink", self._node_call("set_symlink", args, expect), path, "symlink")
        self._expect("set_symlink", (entry.link, entry.uid, entry.gid) == (target, uid, gid),
                     f"{path} points to {entry.link!r}")
        return entry

    def remove_symlink(self, path: str, *, expect: PathState | None) -> None:
        answer = self._node_call("remove_symlink", {"path": path}, expect)
        self._expect("remove_symlink", answer is None, "expected a null result")

    def make_dir(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        args = {"path": path, "mode": mode, "uid": uid, "gid": gid}
        entry = self._node_entry("make_dir", self._node_call("make_dir", args, expect), path, "dir")
        self._expect("make_dir", (entry.mode, entry.uid, entry.gid) == (mode, uid, gid), f"{path} metadata")
        return entry

    def remove_dir(self, path: str, *, expect: PathState | None) -> None:
        answer = self._node_call("remove_dir", {"path": path}, expect)
        self._expect("remove_dir", answer is None, "expected a null result")

    def set_meta(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        answer = self._node_call("set_meta", {"path": path, "mode": mode, "uid": uid, "gid": gid}, expect)
        entry = self._parse("set_meta", FileEntryWire, answer).to_api()
        is_link = entry.type == "symlink"
        self._expect("set_meta", entry.path == path and (entry.uid, entry.gid) == (uid, gid)
                     and (is_link or entry.mode == mode), f"{entry.path!r} metadata not as asked")
        return entry

    def verify_package(self, package_id: str, document: bytes, sha256: str) -> None:
        answer = self._call("verify_package", {"id": package_id, "sha256": sha256,
                                               "document_b64": base64.b64encode(document).decode("ascii")})
        self._expect("verify_package", answer == {"sha256": sha256}, "expected the digest it checked")

    def sweep_temps(self, dirs: list[str]) -> list[str]:
        answer = self._call("sweep_temps", {"dirs": dirs})
        self._expect("sweep_temps", isinstance(answer, list) and all(
            isinstance(p, str) and posixpath.dirname(p) in dirs for p in answer),
            "expected paths inside the swept directories")
        return [clean(p) for p in answer]

    def move_file(self, src: str, dst: str) -> None:
        answer = self._call("move_file", {"src": src, "dst": dst})
        self._expect("move_file", answer is None, "expected a null result")

    def jsonl_check(self, path: str) -> JsonlReport:
        report = self._parse("jsonl_check", JsonlReportWire, self._call("jsonl_check", {"path": path}))
        self._expect("jsonl_check", report.path == path, f"report is about {report.path!r}")
        return report.to_api()

    def jsonl_repair(self, path: str) -> JsonlRepairResult:
        result = self._parse("jsonl_repair", JsonlRepairWire, self._call("jsonl_repair", {"path": path}))
        self._expect("jsonl_repair", result.path == path, f"result is about {result.path!r}")
        self._same_dir("jsonl_repair", path, result.backup_path, ".bak-")
        self._same_dir("jsonl_repair", path, result.quarantine_path, ".quarantine-")
        return result.to_api()

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult:
        result = self._parse("rotate_log", RotateWire,
                             self._call("rotate_log", {"path": path, "method": method}))
        self._expect("rotate_log", (result.path, result.method) == (path, method),
                     f"result is about {result.path!r} ({result.method})")
        self._expect("rotate_log", method == "compress" or result.archive is None, "truncate made an archive")
        self._same_dir("rotate_log", path, result.archive, ".")
        return result.to_api()

    def disk_usage(self, mount: str) -> DiskUsage:
        usage = self._parse("disk_usage", DiskUsageWire, self._call("disk_usage", {"mount": mount}))
        self._expect("disk_usage", usage.mount == mount, f"usage is about {usage.mount!r}")
        return usage.to_api()

    def dpkg_fingerprint(self, binaries: Sequence[str]) -> tuple[str, bool]:
        """The digest of what ``dpkg --verify`` of ``binaries`` looks at (every packaged file's lstat),
        and whether a change was too recent to rely on it (see the agent's ``op_dpkg_fingerprint``).

        Raises: AgentError, TransportError."""
        wire = self._parse("dpkg_fingerprint", FingerprintWire,
                           self._call("dpkg_fingerprint", {"binaries": list(binaries)}))
        return wire.fingerprint, wire.racy

    def deb_file(self, deb: str, path: str, *, max_bytes: int) -> bytes | None:
        """The content of the regular file ``path`` as the package file ``deb`` (in apt's archive cache)
        ships it, read from the archive without unpacking it; None when it ships no regular file there.

        Raises: AgentError (AgentFailedError ``not_found``: no such .deb; ``too_large``: the file is
        over ``max_bytes``; ``invalid``: a damaged archive or a compression the agent cannot read),
        TransportError."""
        cap = 4 * (max_bytes // 3 + 1) + 4096
        if cap > READ_ANSWER_CAP:
            raise AgentError(f"{self.host}: deb_file of up to {max_bytes} bytes exceeds the answer cap",
                             host=self.host)
        answer = self._call("deb_file", {"deb": deb, "path": path, "max_bytes": max_bytes}, max_output=cap)
        data = self._parse("deb_file", DebFileWire, answer).data_b64
        self._expect("deb_file", data is None or len(data) <= max_bytes,
                     f"more than the {max_bytes} bytes asked")
        return data

    def deb_meta(self, deb: str, paths: Sequence[str]) -> DebMeta:
        """Type, mode and owner of ``paths`` as the package file ``deb`` (in apt's archive cache) ships
        them, and the paths it does not ship (see the agent's ``op_deb_meta``). Every path asked about
        is answered exactly once, as an entry or as absent.

        Raises: AgentError (AgentFailedError ``not_found`` when the file is not there), TransportError."""
        asked = list(dict.fromkeys(paths))
        meta = self._parse("deb_meta", DebMetaWire,
                           self._call("deb_meta", {"deb": deb, "paths": asked})).to_api()
        stray = [p for p in [e.path for e in meta.entries] + list(meta.absent) if p not in asked]
        self._expect("deb_meta", not stray, f"paths that were not asked for: {stray[:3]!r}")
        self._expect("deb_meta", meta.answers_exactly(asked),
                     "every path asked about must be answered once, as an entry or as absent")
        return meta

    def http_status(self, url: str, *, timeout_s: float) -> tuple[int | None, str]:
        """GET ``url`` from the host itself (its loopback is where the services listen): the status,
        or None and why no HTTP answer came. The agent's served process answers it, where a ``curl``
        is a process start (about 1.3 s under TCG with probes running, measured).

        Raises: AgentError (the agent refused the URL or failed), TransportError."""
        wire = self._parse("http_status", HttpStatusWire,
                           self._call("http_status", {"url": url, "timeout_s": timeout_s}))
        self._expect("http_status", (wire.status is None) != (wire.error is None),
                     "an answer carries a status or an error, never both or neither")
        return wire.status, clean(wire.error or "")

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]:
        answer = self._call("big_files", {"roots": list(roots), "min_bytes": min_bytes, "limit": limit})
        files = self._parse("big_files", BigFilesWire, answer).files
        self._expect("big_files", len(files) <= limit, f"{len(files)} files, over the limit of {limit}")
        stray = [f.path for f in files if not is_under(f.path, roots) or f.size < min_bytes]
        self._expect("big_files", not stray, f"files outside the roots or too small: {stray[:3]!r}")
        return [f.to_api() for f in files]

    # -- files in remote_dir --------------------------------------------------------------------

    def fetch(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        """Download ``remote`` (a pack archive, typically) to ``local``."""
        self.transport.get_file(remote, local, max_bytes=max_bytes)

    def push(self, local: Path, remote: str) -> str:
        """Upload ``local`` into ``remote_dir`` (``remote`` is a file name there, or a full path in it);
        returns the remote path. :meth:`unpack` consumes an uploaded archive, :meth:`cleanup` the rest."""
        target = remote if remote.startswith("/") else f"{self.remote_dir}/{remote}"
        name = posixpath.basename(target)
        if (posixpath.dirname(target) != self.remote_dir or name in ("", ".", "..")
                or name.startswith("agent-")):
            raise AgentError(f"{self.host}: push target {remote!r} must be a file name in {self.remote_dir}",
                             host=self.host)
        self.install()
        self.transport.put_file(local, target, mode=0o600)
        self._leftovers.add(target)
        return target

    def cleanup(self) -> None:
        """Remove the pack archives and uploads this client left in ``remote_dir``. The server keeps
        running for later requests: it ends with the transport's connection (or :meth:`close`)."""
        if not self._leftovers:
            return
        answer = self._call("discard", {"paths": sorted(self._leftovers)})
        self._parse("discard", DiscardWire, answer)
        self._leftovers.clear()


if TYPE_CHECKING:
    # mypy proves here that RemoteAgent implements the whole AgentApi protocol.
    _CONFORMS: type[AgentApi] = RemoteAgent
