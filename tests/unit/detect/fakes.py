"""Fakes for detect and baseline tests: a scripted host behind FakeTransport, and a small AgentApi.

``FakeHost`` answers the commands probes run (systemctl show, curl, config tests, dpkg-query) from
plain dicts; by default every unit is active and enabled, every endpoint answers 200 and every config
test passes. ``FakeAgent`` implements only the AgentApi methods detect and baseline call (the rest
raise NotImplementedError); by default its host has the template's one-line /etc/fstab and every
path it is asked about exists.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.agent.api import (
    BigFile,
    DiskUsage,
    FileEntry,
    FileType,
    JsonlReport,
    Manifest,
    PackResult,
    Placeholder,
)
from orchestrator.errors import TransportError
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import UnsupportedAgent, not_found

NO_SYSTEMD = (b"System has not been booted with systemd as init system (PID 1). Can't operate.\n"
              b"Failed to connect to bus: Host is down\n")

ACTIVE = {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled", "NRestarts": "0",
          "Result": "success", "LoadState": "loaded", "ExecMainStatus": "0"}
FAILED = {**ACTIVE, "ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
          "ExecMainStatus": "1"}
INACTIVE = {**ACTIVE, "ActiveState": "inactive", "SubState": "dead"}
NOT_FOUND = {"ActiveState": "inactive", "SubState": "dead", "UnitFileState": "", "NRestarts": "0",
             "Result": "success", "LoadState": "not-found", "ExecMainStatus": "0"}


def flapping(restarts: int) -> dict[str, str]:
    return {**ACTIVE, "NRestarts": str(restarts)}


def show_output(props: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in props.items()).encode()


@dataclass
class FakeHost:
    """Decides what each probe command returns. Pass it to FakeTransport (or use ``.transport()``)."""

    units: dict[str, dict[str, str]] = field(default_factory=dict)
    has_systemd: bool = True
    has_systemctl: bool = True
    #: url -> (curl exit status, stdout, stderr)
    http: dict[str, tuple[int, bytes, bytes]] = field(default_factory=dict)
    #: argv[0] -> (exit status, stderr); programs not listed pass, "missing" ones are not installed
    config_tests: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    #: package -> version; others are unknown to dpkg
    packages: dict[str, str] = field(default_factory=dict)

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        program = argv[0]
        if program in self.missing or (program == "systemctl" and not self.has_systemctl):
            return 127, b"", f"sh: 1: {program}: not found\n".encode()
        if program == "systemctl":
            if not self.has_systemd:
                return 1, b"", NO_SYSTEMD
            return 0, show_output(self.units.get(argv[-1], ACTIVE)), b""
        if program == "curl":
            return self.http.get(argv[-1], (0, b"200", b""))
        if program == "dpkg-query":
            names = argv[4:]
            out = b"".join(f"{n}\t{self.packages[n]}\n".encode() for n in names if n in self.packages)
            err = b"".join(f"dpkg-query: no packages found matching {n}\n".encode()
                           for n in names if n not in self.packages)
            return (1 if err else 0), out, err
        exit_status, output = self.config_tests.get(program, (0, b"syntax is ok\n"))
        return exit_status, b"", output

    def transport(self) -> FakeTransport:
        return FakeTransport(self)


#: The template image's fstab (images/debian-12/overlay/etc/fstab): nothing in it can stop a boot.
TEMPLATE_FSTAB = b"/dev/vda / ext4 defaults,errors=remount-ro 0 1\n"


def local_style_missing(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """What LocalTransport raises for a program that is not on PATH."""
    error = TransportError(f"local: program {argv[0]!r} not found", host="local")
    error.__cause__ = FileNotFoundError(2, "No such file or directory", argv[0])
    raise error


def usage(pct: float = 50.0, inodes_pct: float = 10.0, mount: str = "/") -> DiskUsage:
    size = 10_000_000_000
    used = int(size * pct / 100)
    return DiskUsage(mount, size, used, size - used, pct, 1_000_000, int(10_000 * inodes_pct),
                     inodes_pct)


def make_tar(files: dict[str, bytes], *, symlinks: dict[str, str] | None = None,
             dirs: tuple[str, ...] = ()) -> bytes:
    """A tar in memory with the given member names (as the agent would pack them)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def file_entry(path: str, data: bytes = b"", *, type_: FileType = "file") -> FileEntry:
    return FileEntry(path=path, type=type_, mode=0o644, uid=0, gid=0, owner="root", group="root",
                     size=len(data), mtime=1_700_000_000.0,
                     sha256="0" * 64 if type_ == "file" else None,
                     link="/elsewhere" if type_ == "symlink" else None)


@dataclass
class FakeAgent(UnsupportedAgent):
    """The AgentApi methods detect and baseline use, answered from dicts; ``errors`` maps a method name
    to the exception it raises."""

    disk: dict[str, DiskUsage] = field(default_factory=dict)
    jsonl: dict[str, JsonlReport] = field(default_factory=dict)
    big: list[BigFile] = field(default_factory=list)
    tar: bytes = b""
    entries: tuple[FileEntry, ...] = ()
    missing_paths: tuple[str, ...] = ()
    placeholders: tuple[Placeholder, ...] = ()
    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    #: Regular files read_file answers from; others are not found.
    files: dict[str, bytes] = field(default_factory=lambda: {"/etc/fstab": TEMPLATE_FSTAB})
    #: Paths that exist, for manifest and disk_usage; None: every path exists.
    existing: set[str] | None = None

    def _call(self, name: str, arg: object) -> None:
        self.calls.append((name, arg))
        if name in self.errors:
            raise self.errors[name]

    def disk_usage(self, mount: str) -> DiskUsage:
        self._call("disk_usage", mount)
        if mount not in self.disk and self.existing is not None and mount not in self.existing:
            raise not_found("disk_usage", mount)
        return self.disk.get(mount, usage(mount=mount))

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        self._call("read_file", (path, max_bytes))
        if path not in self.files:
            raise not_found("read_file", path)
        return self.files[path][:max_bytes]

    def manifest(self, paths: list[str]) -> Manifest:
        """Symlink entries for the paths that exist (udev's by-* names are symlinks), the rest missing."""
        self._call("manifest", tuple(paths))
        present = [p for p in paths if self.existing is None or p in self.existing]
        return Manifest(tuple(file_entry(p, type_="symlink") for p in present),
                        tuple(p for p in paths if p not in present))

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]:
        self._call("big_files", (tuple(roots), min_bytes, limit))
        return self.big[:limit]

    def jsonl_check(self, path: str) -> JsonlReport:
        self._call("jsonl_check", path)
        return self.jsonl.get(path, JsonlReport(path, exists=True, total_lines=3, good_lines=3))

    def pack(self, paths: list[str], *, max_file_bytes: int) -> PackResult:
        self._call("pack", (tuple(paths), max_file_bytes))
        return PackResult("/run/vmrepair-agent/pack.tar", Manifest(self.entries, self.missing_paths),
                          self.placeholders)

    def fetch(self, remote: str, local: Path) -> None:
        self._call("fetch", remote)
        local.write_bytes(self.tar)

    def cleanup(self) -> None:
        self._call("cleanup", None)
