"""An in-memory troubleshooting VM for repair tests: a file tree, an AgentApi over it, and a command
handler for FakeTransport that answers the commands repair steps run (find, ln, systemctl, dpkg-deb...).

Nothing here patches code under test: the steps talk to a real FakeTransport and to ``FakeAgent``,
which follows the agent's contract (lstat semantics, no write through symlinks, parents created).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.agent.api import (
    BigFile,
    DiskUsage,
    FileEntry,
    JsonlRepairResult,
    JsonlReport,
    Manifest,
    RotateResult,
)
from orchestrator.errors import AgentError
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.steps.context import RepairContext
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import UnsupportedAgent, not_found, sha

NGINX = Component(
    name="nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
    unit_paths=("/etc/systemd/system/nginx.service.d",), config_test=("nginx", "-t"),
    packages=("nginx", "nginx-common"), log_paths=("/var/log/nginx",),
)
SAMPLEAPP = Component(
    name="sampleapp", units=("sampleapp.service",),
    config_paths=("/etc/default/sampleapp", "/opt/sampleapp"),
    unit_paths=("/etc/systemd/system/sampleapp.service", "/etc/systemd/system/sampleapp.service.d"),
    data_paths=("/var/lib/sampleapp",), jsonl_logs=("/var/lib/sampleapp/interactions.jsonl",),
    log_paths=("/var/log/sampleapp",),
)
RSYSLOG = Component(name="rsyslog", units=("rsyslog.service",), log_paths=("/var/log",))
HOST = Component(name="host")
BOOT = Component(name="boot", config_paths=("/etc/fstab",), fstab=("/etc/fstab",))


def issue(component: str, kind: IssueKind, subject: str) -> Issue:
    return Issue(component, kind, Severity.CRITICAL, subject, f"{subject} broken", "probe")


@dataclass
class Node:
    type: Literal["file", "dir", "symlink"]
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str | None = None


class FakeAgent(UnsupportedAgent):
    """AgentApi over ``fs`` (path -> Node). ``corrupt`` holds jsonl logs with bad lines."""

    def __init__(self, fs: dict[str, Node] | None = None) -> None:
        self.fs: dict[str, Node] = {"/": Node("dir", mode=0o755)}
        for path, node in (fs or {}).items():
            self.put(path, node)
        self.corrupt: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.big: list[BigFile] = []

    # -- building the tree -----------------------------------------------------------------------
    def put(self, path: str, node: Node) -> None:
        parent = posixpath.dirname(path)
        if parent not in self.fs:
            self.put(parent, Node("dir", mode=0o755))
        self.fs[path] = node

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.put(path, Node("file", data, mode))

    def symlink(self, path: str, target: str) -> None:
        self.put(path, Node("symlink", mode=0o777, link=target))

    def _entry(self, path: str) -> FileEntry:
        node = self.fs[path]
        digest = sha(node.data) if node.type == "file" else None
        return FileEntry(path, node.type, node.mode, node.uid, node.gid, "root", "root",
                         len(node.data), 0.0, digest, node.link)

    # -- AgentApi ----------------------------------------------------------------------------------
    def manifest(self, paths: list[str]) -> Manifest:
        self.calls.append(("manifest", ",".join(paths)))
        found: dict[str, FileEntry] = {}
        missing = []
        for root in paths:
            if root not in self.fs:
                missing.append(root)
                continue
            for path in self.fs:
                if path == root or (self.fs[root].type == "dir" and path.startswith(root.rstrip("/") + "/")):
                    found[path] = self._entry(path)
        return Manifest(tuple(found[p] for p in sorted(found)), tuple(missing))

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        self.calls.append(("read_file", path))
        node = self.fs.get(path)
        if node is None or node.type != "file":
            raise AgentError(f"{path}: not a file")
        return node.data[:max_bytes]

    def write_file(self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
                   expect_sha256: str | None = None) -> FileEntry:
        self.calls.append(("write_file", path))
        cur = self.fs.get(path)
        if cur is not None and cur.type != "file":
            raise AgentError(f"{path} is a {cur.type}, not a regular file")
        current_sha = None if cur is None else sha(cur.data)
        if expect_sha256 is not None and current_sha != expect_sha256:
            raise AgentError(f"{path} changed since capture")
        self.put(path, Node("file", data, mode, uid, gid))
        return self._entry(path)

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        self.calls.append(("remove_file", path))
        self.fs.pop(path)

    def move_file(self, src: str, dst: str) -> None:
        self.calls.append(("move_file", f"{src} -> {dst}"))
        if src not in self.fs or self.fs[src].type == "dir":
            raise AgentError(f"{src} does not exist or is a directory")
        if dst in self.fs:
            raise AgentError(f"{dst} already exists")
        self.put(dst, self.fs.pop(src))

    def jsonl_check(self, path: str) -> JsonlReport:
        self.calls.append(("jsonl_check", path))
        exists = path in self.fs
        bad = ((3, "not JSON"),) if path in self.corrupt else ()
        return JsonlReport(path, exists, 10, 10 - len(bad), bad)

    def jsonl_repair(self, path: str) -> JsonlRepairResult:
        self.calls.append(("jsonl_repair", path))
        self.corrupt.discard(path)
        node = self.fs[path]
        node.data = node.data.replace(b"garbage\n", b"")
        return JsonlRepairResult(path, 9, 0, 1, path + ".quarantine-1", path + ".bak-1")

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult:
        self.calls.append(("rotate_log", f"{path} {method}"))
        size = len(self.fs[path].data)
        self.fs[path].data = b""
        return RotateResult(path, path + ".1.gz" if method == "compress" else None, size, method)

    def disk_usage(self, mount: str) -> DiskUsage:
        """statvfs semantics: any existing path answers (a full disk), a missing one is not found."""
        if mount not in self.fs:
            raise not_found("disk_usage", mount, host="vm")
        return DiskUsage(mount, 100, 99, 1, 99.0, 100, 10, 10.0)

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]:
        self.calls.append(("big_files", ",".join(roots)))
        return [b for b in self.big if b.size >= min_bytes][:limit]


@dataclass
class FakeBaseline:
    """BaselineReader (+ link) over a dict of path -> Node; ``placeholders`` have no content."""

    fs: dict[str, Node] = field(default_factory=dict)
    placeholders: set[str] = field(default_factory=set)

    def read(self, path: str) -> bytes | None:
        node = self.fs.get(path)
        if path in self.placeholders or node is None or node.type != "file":
            return None
        return node.data

    def entry(self, path: str) -> tuple[int, int, int] | None:
        node = self.fs.get(path)
        return None if node is None else (node.mode, node.uid, node.gid)

    def paths_under(self, prefix: str) -> list[str]:
        return sorted(p for p in self.fs if p == prefix or p.startswith(prefix.rstrip("/") + "/"))

    def link(self, path: str) -> str | None:
        node = self.fs.get(path)
        return node.link if node is not None and node.type == "symlink" else None


Answer = tuple[int, bytes, bytes]


@dataclass
class FakeVm:
    """Answers the commands repair steps run, against ``agent``'s tree.

    ``answers`` maps an argv prefix to a fixed answer or a function of the argv; the first (longest)
    matching prefix wins. File-system commands (find -maxdepth 0, ln, install, chmod, chown, rm, mktemp,
    dpkg-deb -x) act on the tree.
    """

    agent: FakeAgent
    answers: dict[tuple[str, ...], Answer | Callable[[tuple[str, ...]], Answer]] = field(default_factory=dict)
    #: .deb path -> files it ships (path -> content), for dpkg-deb -x.
    debs: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def transport(self) -> FakeTransport:
        return FakeTransport(self.handle)

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> Answer:  # noqa: PLR0911, PLR0912
        for prefix in sorted(self.answers, key=len, reverse=True):
            if argv[:len(prefix)] == prefix:
                answer = self.answers[prefix]
                return answer(argv) if callable(answer) else answer
        fs = self.agent.fs
        match argv:
            case ("find", *rest) if "-maxdepth" in rest and rest[rest.index("-maxdepth") + 1] == "0":
                dirs = rest[:rest.index("-maxdepth")]
                kinds = {"dir": "d", "file": "f", "symlink": "l"}
                out = b"".join(f"{kinds[fs[d].type]} {d}\0".encode() for d in dirs if d in fs)
                return (0 if all(d in fs for d in dirs) else 1), out, b""
            case ("find", "/var/cache/apt/archives", *_):
                name = argv[argv.index("-name") + 1]
                start = "/var/cache/apt/archives/" + name.split("*")[0]
                return 0, "".join(d + "\n" for d in self.debs if d.startswith(start)).encode(), b""
            case ("mktemp", "-d", pattern):
                return 0, pattern.replace("XXXXXXXX", "abcd1234").encode() + b"\n", b""
            case ("dpkg-deb", "-x", deb, tmp):
                for path, data in self.debs[deb].items():
                    self.agent.file(tmp + path, data)
                return 0, b"", b""
            case ("rm", "-rf", "--", path):
                for p in [p for p in fs if p == path or p.startswith(path + "/")]:
                    del fs[p]
                return 0, b"", b""
            case ("ln", "-s", "--", target, path):
                self.agent.symlink(path, target)
                return 0, b"", b""
            case ("install", "-d", "-m", mode, "-o", uid, "-g", gid, "--", path):
                self.agent.put(path, Node("dir", mode=int(mode, 8), uid=int(uid), gid=int(gid)))
                return 0, b"", b""
            case ("chmod", mode, "--", path):
                fs[path].mode = int(mode, 8)
                return 0, b"", b""
            case ("chown", owner, "--", path):
                uid, gid = owner.split(":")
                fs[path].uid, fs[path].gid = int(uid), int(gid)
                return 0, b"", b""
            case ("systemctl", "is-active", _):
                return 0, b"active\n", b""
        return 0, b"", b""


def context(vm: FakeVm, component: Component, the_issue: Issue, **kwargs: object) -> RepairContext:
    """A RepairContext on ``vm`` whose clock advances one second per reading and never sleeps."""
    ticks = iter(range(1_000_000))
    defaults: dict[str, object] = {
        "components": [NGINX, SAMPLEAPP, RSYSLOG], "stamp": "STAMP",
        "sleep": lambda _s: None, "clock": lambda: float(next(ticks)),
    }
    defaults.update(kwargs)
    return RepairContext(vm.transport(), vm.agent, the_issue, component, **defaults)  # type: ignore[arg-type]
