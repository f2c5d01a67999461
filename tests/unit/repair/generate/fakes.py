"""A troubleshooting VM and a baseline for the strategy generators' tests: a FakeTransport whose handler
answers the read-only questions the generators ask (systemctl show, dpkg-query, dpkg --verify, the
config test, stat), and a baseline built from FileEntry values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.agent.api import FileEntry, FileType, Manifest
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.repair.generate import Situation
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import dpkg_status_answer

NAMES = {0: "root", 101: "app", 33: "www-data"}

APP = Component(
    name="app", units=("app.service",), config_paths=("/etc/app",),
    unit_paths=("/etc/systemd/system/app.service.d",), data_paths=("/var/lib/app/data",),
    writable_paths=("/var/lib/app",), user="app", group="app", packages=("app",),
    config_test=("app", "-t"),
)


def entry(path: str, kind: FileType = "file", *, mode: int = 0o644, uid: int = 0, gid: int = 0,
          mtime: float = 100.0, sha: str | None = "s1", link: str | None = None) -> FileEntry:
    owner, group = NAMES.get(uid, str(uid)), NAMES.get(gid, str(gid))
    return FileEntry(path, kind, mode, uid, gid, owner, group, 10, mtime, sha if kind == "file" else None,
                     link)


def folder(path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = 50.0) -> FileEntry:
    return entry(path, "dir", mode=mode, uid=uid, gid=gid, mtime=mtime)


def issue(kind: IssueKind, subject: str = "app.service", *, component: str = "app", summary: str = "broken",
          evidence: Mapping[str, str] | None = None) -> Issue:
    return Issue(component, kind, Severity.CRITICAL, subject, summary, "probe", dict(evidence or {}))


@dataclass
class Known:
    """The KnownGood a generator reads: entries by path and unit states."""

    entries: list[FileEntry] = field(default_factory=list)
    units: dict[str, Any] = field(default_factory=dict)

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}


@dataclass
class Vm:
    """The VM's answers: ``show`` per unit (properties), dpkg states and --verify output, the config
    test's (exit, output), and paths ``stat`` finds."""

    show: dict[str, dict[str, str]] = field(default_factory=dict)
    dpkg: dict[str, str] = field(default_factory=dict)
    verify: dict[str, str] = field(default_factory=dict)
    config_test: tuple[int, str] = (0, "")
    existing: set[str] = field(default_factory=set)
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def transport(self) -> FakeTransport:
        return FakeTransport(self.handle)

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:  # noqa: PLR0911
        self.asked.append(argv)
        match argv:
            case ("systemctl", "show", props, "--", *units):
                wanted = props.removeprefix("--property=").split(",")
                blocks = ["\n".join(f"{k}={v}" for k, v in self.show.get(u, {}).items() if k in wanted)
                          for u in units]
                return 0, "\n\n".join(blocks).encode() + b"\n", b""
            case ("dpkg-query", "-W", "-f", _, "--", *_):
                return dpkg_status_answer(argv, self.dpkg)
            case ("dpkg", "--verify", "--", package):
                return 0, self.verify.get(package, "").encode(), b""
            case ("app", "-t"):
                status, output = self.config_test
                return status, b"", output.encode()
            case ("stat", *_, path):
                if path in self.existing:
                    return 0, b"41ed:0:0:root:root\n", b""
                return 1, b"", f"stat: cannot statx '{path}': No such file or directory\n".encode()
        return 0, b"", b""


def situation(the_issue: Issue, *, now: list[FileEntry], missing: tuple[str, ...] = (),
              baseline: Known | None = None, vm: Vm | None = None, component: Component = APP,
              captured: tuple[str, ...] | None = None) -> Situation:
    roots = captured if captured is not None else (*component.all_paths, *component.writable_paths)
    return Situation(the_issue, component, Manifest(tuple(now), missing), baseline,
                     (vm or Vm()).transport(), captured=roots)
