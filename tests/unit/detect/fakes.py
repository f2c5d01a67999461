"""Fakes for detect and baseline tests: a scripted host behind FakeTransport, and the target's agent.

``FakeHost`` answers the commands probes run (systemctl show, curl, config tests, dpkg-query, dpkg
--verify, ss) from plain dicts; by default every unit is active and enabled, every endpoint answers
200, every config test passes, every package the dpkg probe asks about is installed and intact, and
nothing listens on TCP. ``target_agent`` builds the shared :class:`tests.unit.fake_agent.FakeAgent` as
a healthy target: the template's one-line /etc/fstab, every path it is asked about exists, half-full
disks and sound logs, and a canned ``pack``.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field

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
from orchestrator.detect.packages import STATUS_FORMAT
from orchestrator.errors import TransportError
from orchestrator.transport.fake import FakeTransport
from tests.unit import fake_agent
from tests.unit.fake_agent import PACK_TAR

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
    #: For the dpkg probe: package -> ${db:Status-Abbrev} ("" = unknown to dpkg); others are "ii ".
    package_states: dict[str, str] = field(default_factory=dict)
    #: package -> what `dpkg --verify` prints for it (default: nothing, all intact)
    verify: dict[str, bytes] = field(default_factory=dict)
    #: path -> owning package, for `dpkg-query -S`
    owners: dict[str, str] = field(default_factory=dict)
    #: what `ss -H -ltn` prints
    listening: bytes = b""

    def __call__(  # noqa: PLR0911 - one answer per program it plays
        self, argv: tuple[str, ...], stdin: bytes | None,
    ) -> tuple[int, bytes, bytes]:
        program = argv[0]
        if program in self.missing or (program == "systemctl" and not self.has_systemctl):
            return 127, b"", f"sh: 1: {program}: not found\n".encode()
        if program == "systemctl":
            if not self.has_systemd:
                return 1, b"", NO_SYSTEMD
            return 0, show_output(self.units.get(argv[-1], ACTIVE)), b""
        if program == "curl":
            return self.http.get(argv[-1], (0, b"200", b""))
        if program == "dpkg-query" and STATUS_FORMAT in argv:
            names = argv[argv.index("--") + 1:]
            return dpkg_status_answer(argv, {n: self.package_states.get(n, "ii ") for n in names})
        if program == "dpkg-query" and argv[1] == "-S":
            paths = argv[argv.index("--") + 1:]
            return 0, b"".join(f"{self.owners[p]}: {p}\n".encode() for p in paths if p in self.owners), b""
        if program == "dpkg" and argv[1] == "--verify":
            return 0, b"".join(self.verify.get(n, b"") for n in argv[argv.index("--") + 1:]), b""
        if program == "ss":
            return 0, self.listening, b""
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


#: dpkg's ${Status} (its last word) -> ${db:Status-Abbrev}, for fakes that keep the long form.
STATUS_ABBREVS = {"installed": "ii ", "half-configured": "iF ", "half-installed": "iH ", "unpacked": "iU ",
                  "triggers-pending": "it ", "config-files": "rc ", "not-installed": "un "}


def _abbrev(state: str) -> str:
    """``ii `` as it is, ``install ok installed`` as ``ii ``, "" (unknown to dpkg) as it is."""
    words = state.split()
    return STATUS_ABBREVS.get(words[-1], state) if len(words) == 3 else state


def dpkg_status_answer(argv: tuple[str, ...], states: dict[str, str]) -> tuple[int, bytes, bytes]:
    """What ``dpkg-query -W -f STATUS_FORMAT -- NAMES`` (the dpkg probe's query, ``argv``) prints on a
    host whose packages are in ``states``: name -> ${db:Status-Abbrev} (``ii ``), or the long ${Status}
    (``install ok installed``); names not in it, or mapped to "", are unknown to dpkg."""
    names = argv[argv.index("--") + 1:]
    abbrevs = {n: _abbrev(states.get(n, "")) for n in names}
    out = b"".join(f"{n}\t{abbrev}\n".encode() for n, abbrev in abbrevs.items() if abbrev)
    err = b"".join(f"dpkg-query: no packages found matching {n}\n".encode()
                   for n, abbrev in abbrevs.items() if not abbrev)
    return (1 if err else 0), out, err


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


def target_agent(
    *,
    files: dict[str, bytes] | None = None,
    existing: set[str] | None = None,
    disk: dict[str, DiskUsage] | None = None,
    jsonl: dict[str, JsonlReport] | None = None,
    big: list[BigFile] | None = None,
    tar: bytes = b"",
    entries: tuple[FileEntry, ...] = (),
    missing_paths: tuple[str, ...] = (),
    placeholders: tuple[Placeholder, ...] = (),
    errors: dict[str, Exception] | None = None,
) -> fake_agent.FakeAgent:
    """The shared FakeAgent as detect and baseline see a healthy target.

    Its tree holds ``files`` (default: the template's /etc/fstab) and ``existing`` as the symlinks udev
    makes (to the directory /elsewhere); with ``existing`` None every other path exists too (for
    manifest and disk_usage), as such a symlink. Disks are half full unless ``disk`` says otherwise;
    ``jsonl`` cans jsonl_check (default: 3 good lines); ``big`` cans big_files; ``pack`` answers
    ``entries``, ``missing_paths`` and ``placeholders`` and leaves ``tar`` for fetch; ``errors`` maps a
    method name to the exception it raises.
    """
    reports = dict(jsonl or {})
    agent = fake_agent.FakeAgent(
        files={"/etc/fstab": TEMPLATE_FSTAB} if files is None else files,
        symlinks=dict.fromkeys(existing or (), "/elsewhere"),
        # Where every made-up path points: a directory, so no config symlink of a healthy host dangles.
        dirs=("/elsewhere",),
        anything_exists=existing is None,
        disk=disk, usage_of=lambda mount: usage(mount=mount), big=big or [], errors=errors,
        answers={
            "jsonl_check": lambda path: reports.get(path, JsonlReport(path, exists=True, total_lines=3,
                                                                      good_lines=3)),
            "pack": PackResult(PACK_TAR, Manifest(entries, missing_paths), placeholders),
        },
    )
    agent.remote[PACK_TAR] = tar
    return agent


#: The name baseline and doctor tests import the builder by.
FakeAgent = target_agent
