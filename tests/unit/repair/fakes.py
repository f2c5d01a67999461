"""An in-memory troubleshooting VM for repair tests: the shared FakeAgent over a file tree
(``vm_agent``), and a command handler for FakeTransport that answers the commands repair steps run
(find, ln, systemctl, dpkg-deb...) against the same tree.

Nothing here patches code under test: the steps talk to a real FakeTransport and to the shared
``FakeAgent``, which follows the agent's contract (lstat semantics, no write through symlinks, parents
created).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent.api import DiskUsage
from orchestrator.detect.packages import STATUS_FORMAT
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.steps.context import RepairContext
from orchestrator.steps.paths import within_any
from orchestrator.transport.fake import FakeTransport
from tests.unit import fake_agent
from tests.unit.detect.fakes import dpkg_status_answer
from tests.unit.fake_agent import Node, call_brief

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


def full_disk(mount: str) -> DiskUsage:
    """The VM's disks are full: what disk repairs are tried against."""
    return DiskUsage(mount, 100, 99, 1, 99.0, 100, 10, 10.0)


def vm_agent(fs: dict[str, Node] | None = None, **options: Any) -> fake_agent.FakeAgent:
    """The shared FakeAgent as the troubleshooting VM: the tree ``fs``, full disks, calls recorded as
    one string each (``("move_file", "src -> dst")``), errors from host "vm"."""
    return fake_agent.FakeAgent(fs, host="vm", record=call_brief, usage_of=full_disk, **options)


@dataclass
class FakeBaseline:
    """BaselineReader (+ link) over a dict of path -> Node; ``placeholders`` have no content."""

    fs: dict[str, Node] = field(default_factory=dict)
    placeholders: set[str] = field(default_factory=set)
    #: The paths the baseline watched; None: every path.
    roots: tuple[str, ...] | None = None

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

    def covers(self, path: str) -> bool:
        return self.roots is None or within_any(path, self.roots)


Answer = tuple[int, bytes, bytes]


@dataclass
class FakeVm:
    """Answers the commands repair steps run, against ``agent``'s tree.

    ``answers`` maps an argv prefix to a fixed answer or a function of the argv; the first (longest)
    matching prefix wins. File-system commands (find -maxdepth 0, ln, install, chmod, chown, rm, mktemp,
    dpkg-deb -x) act on the tree.
    """

    agent: fake_agent.FakeAgent
    answers: dict[tuple[str, ...], Answer | Callable[[tuple[str, ...]], Answer]] = field(default_factory=dict)
    #: .deb path -> files it ships (path -> content): in the apt cache, read by the agent's deb_file
    #: (or unpacked by dpkg-deb -x when a test takes that away).
    debs: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for deb, files in self.debs.items():
            self.agent.file(deb, b"!<arch>\n")
            self.agent.deb_files[deb] = files

    def transport(self) -> FakeTransport:
        return FakeTransport(self.handle)

    def id_of(self, account: str) -> int:
        """A numeric id, or the id of a name the fake host knows (``agent.names``)."""
        if account.isdigit():
            return int(account)
        return next(i for i, name in self.agent.names.items() if name == account)

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
                self.agent.put(path, Node("dir", mode=int(mode, 8), uid=self.id_of(uid), gid=self.id_of(gid)))
                return 0, b"", b""
            case ("chmod", mode, "--", path):
                fs[path].mode = int(mode, 8)
                return 0, b"", b""
            case ("chown", owner, "--", path):
                uid, _, gid = owner.partition(":")
                if uid:
                    fs[path].uid = self.id_of(uid)
                if gid:
                    fs[path].gid = self.id_of(gid)
                return 0, b"", b""
            case ("systemctl", "is-active", *_):   # with or without "--" before the unit
                return 0, b"active\n", b""
            case ("dpkg-query", "-W", "-f", fmt, "--", *names) if fmt == STATUS_FORMAT:
                # The dpkg probe's query: every package it asks about is installed (dpkg --verify
                # answers nothing, the default below: every file intact).
                return dpkg_status_answer(argv, dict.fromkeys(names, "ii "))
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


#: The name quarantine tests import the builder by.
FakeAgent = vm_agent
