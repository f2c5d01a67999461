"""Fakes for detect and baseline tests: a scripted host behind FakeTransport, and the target's agent.

``FakeHost`` answers the commands probes run (systemctl show, is-system-running and list-units, curl,
config tests, dpkg-query, dpkg --verify, ss, stat, journalctl) from plain dicts; by default every unit
is active and enabled, the system is running with no failed unit, every endpoint answers 200, every
config test passes, every package the dpkg probe asks about is installed and intact, nothing listens
on TCP, the system directories have their Debian owners and modes and the journal (the kernel's, and
systemd's unit failures) is empty.
``target_agent`` builds the shared :class:`tests.unit.fake_agent.FakeAgent` as a healthy target: the
template's one-line /etc/fstab, the account files and sudoers with Debian's modes, /proc files of an
idle untainted kernel, every other path it is asked about exists, half-full disks and sound logs, and
a canned ``pack``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.agent.api import (
    BigFile,
    DebEntry,
    DebMeta,
    DiskUsage,
    FileEntry,
    FileType,
    JsonlReport,
    Manifest,
    PackResult,
    Placeholder,
)
from orchestrator.detect.packages import STATUS_FORMAT
from orchestrator.detect.pkgmeta import VERSION_FORMAT
from orchestrator.errors import TransportError
from orchestrator.transport.fake import FakeTransport
from tests.unit import fake_agent
from tests.unit.fake_agent import PACK_TAR, Node, file_node

#: The template's sampleapp account (a system user).
SAMPLEAPP_ID = 999
#: What ``ss -H -ltn`` prints on the template guest (recorded with -p for discovery's tests).
TEMPLATE_LISTENING = (Path(__file__).parents[1] / "discover" / "data" / "ss.txt").read_bytes()

NO_SYSTEMD = (b"System has not been booted with systemd as init system (PID 1). Can't operate.\n"
              b"Failed to connect to bus: Host is down\n")

ACTIVE = {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled", "NRestarts": "0",
          "Result": "success", "LoadState": "loaded", "ExecMainStatus": "0"}
FAILED = {**ACTIVE, "ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
          "ExecMainStatus": "1"}
INACTIVE = {**ACTIVE, "ActiveState": "inactive", "SubState": "dead"}
NOT_FOUND = {"ActiveState": "inactive", "SubState": "dead", "UnitFileState": "", "NRestarts": "0",
             "Result": "success", "LoadState": "not-found", "ExecMainStatus": "0"}


#: The host-wide probes every plan has after its disk and inode probes, whatever the watch config.
HOST_PROBES = (
    "memory:pressure", "memory:oom", "kernel:taint",
    "sysdir:/tmp", "sysdir:/var/tmp", "sysdir:/etc/shadow", "sysdir:/etc/gshadow", "sysdir:/etc/passwd",
    "sysdir:/etc/group", "sysdir:/etc/sudoers", "sysdir:/etc/sudoers.d",
    "sysdir:/", "sysdir:/etc", "sysdir:/usr", "sysdir:/var",
    "system:state",
)


def flapping(restarts: int) -> dict[str, str]:
    return {**ACTIVE, "NRestarts": str(restarts)}


def show_output(props: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in props.items()).encode()


#: (raw st_mode, uid, gid, owner, group) as ``stat --format=%f...`` reports them.
StatInfo = tuple[int, int, int, str, str]
#: The directories sysdir probes stat, as on a healthy Debian host.
HEALTHY_DIRS: dict[str, StatInfo] = {
    "/tmp": (0o41777, 0, 0, "root", "root"), "/var/tmp": (0o41777, 0, 0, "root", "root"),
    "/": (0o40755, 0, 0, "root", "root"), "/etc": (0o40755, 0, 0, "root", "root"),
    "/usr": (0o40755, 0, 0, "root", "root"), "/var": (0o40755, 0, 0, "root", "root"),
}


def stat_line(info: StatInfo) -> bytes:
    mode, uid, gid, owner, group = info
    return f"{mode:x}:{uid}:{gid}:{owner}:{group}\n".encode()


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
    #: What ``systemctl is-system-running`` prints, and ``list-units --state=failed`` prints.
    system_state: str = "running"
    failed_units: bytes = b""
    #: path -> what ``stat`` reports; paths not listed do not exist.
    paths: dict[str, StatInfo] = field(default_factory=lambda: dict(HEALTHY_DIRS))
    #: What ``journalctl -k`` prints (every window and priority alike).
    kernel_log: bytes = b""
    #: What the unit probes' ``journalctl --output=json`` (failures and scheduled restarts) prints.
    unit_journal: bytes = b""
    #: For the dpkg probe: package -> ${db:Status-Abbrev} ("" = unknown to dpkg); others are "ii ".
    package_states: dict[str, str] = field(default_factory=dict)
    #: package -> what `dpkg --verify` prints for it (default: nothing, all intact)
    verify: dict[str, bytes] = field(default_factory=dict)
    #: what `dpkg --audit` prints (None: the fake has no answer, as before: exit 127)
    dpkg_audit: bytes | None = None
    #: path -> owning package, for `dpkg-query -S`
    owners: dict[str, str] = field(default_factory=dict)
    #: what `ss -H -ltn` prints (default: the template guest's listeners, nginx, sshd and sampleapp)
    listening: bytes = TEMPLATE_LISTENING

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        program = argv[0]
        if program in self.missing or (program == "systemctl" and not self.has_systemctl):
            return 127, b"", f"sh: 1: {program}: not found\n".encode()
        answer = {"systemctl": self._systemctl, "stat": self._stat, "dpkg-query": self._dpkg_query,
                  "dpkg": self._dpkg, "ss": lambda _: (0, self.listening, b""),
                  "journalctl": lambda argv: (0, self.unit_journal if "--output=json" in argv
                                              else self.kernel_log, b""),
                  "curl": lambda argv: self.http.get(argv[-1], (0, b"200", b""))}.get(program)
        if answer is not None:
            return answer(argv)
        exit_status, output = self.config_tests.get(program, (0, b"syntax is ok\n"))
        return exit_status, b"", output

    def _stat(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        """``stat -L --format=F -- PATH...``: a line per existing path (``%n\t`` first when the
        format asks for the name), coreutils' message for each missing one."""
        paths = argv[argv.index("--") + 1:]
        named = argv[2].startswith("--format=%n")
        out, err = b"", b""
        for path in paths:
            if path not in self.paths:
                err += f"stat: cannot statx '{path}': No such file or directory\n".encode()
            else:
                out += (path.encode() + b"\t" if named else b"") + stat_line(self.paths[path])
        return (1 if err else 0), out, err

    def _dpkg_query(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if STATUS_FORMAT in argv:
            names = argv[argv.index("--") + 1:]
            return dpkg_status_answer(argv, {n: self.package_states.get(n, "ii ") for n in names})
        if VERSION_FORMAT in argv:  # the pkgmeta probe: installed at ``packages``' version, else 1.0
            names = argv[argv.index("--") + 1:]
            return 0, b"".join(f"{n}\t{self.packages.get(n, '1.0')}\tamd64\tii \n".encode()
                               for n in names), b""
        if argv[1] == "-S":
            paths = argv[argv.index("--") + 1:]
            return 0, b"".join(f"{self.owners[p]}: {p}\n".encode() for p in paths if p in self.owners), b""
        names = argv[4:]
        out = b"".join(f"{n}\t{self.packages[n]}\n".encode() for n in names if n in self.packages)
        err = b"".join(f"dpkg-query: no packages found matching {n}\n".encode()
                       for n in names if n not in self.packages)
        return (1 if err else 0), out, err

    def _dpkg(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if argv[1] == "--verify":
            return 0, b"".join(self.verify.get(n, b"") for n in argv[argv.index("--") + 1:]), b""
        if argv[1] == "--audit" and self.dpkg_audit is not None:
            return 0, self.dpkg_audit, b""
        return 127, b"", b"unexpected dpkg call\n"

    def _systemctl(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if not self.has_systemd:
            return 1, b"", NO_SYSTEMD
        if argv[1] == "is-system-running":
            return (0 if self.system_state == "running" else 1), f"{self.system_state}\n".encode(), b""
        if argv[1] == "list-units":
            return 0, self.failed_units, b""
        # As systemctl prints it: one block per unit after `--`, blank lines between blocks.
        asked = argv[argv.index("--") + 1:] if "--" in argv else argv[-1:]
        return 0, b"\n".join(show_output(self.units.get(u, ACTIVE)) for u in asked), b""

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
#: Debian's gid of the shadow group.
SHADOW_GID = 42
#: An idle 2 GiB guest, as its kernel prints these files.
MEMINFO = (b"MemTotal:        2014248 kB\nMemFree:         1523940 kB\nMemAvailable:    1712816 kB\n"
           b"Buffers:           21848 kB\nCached:           243012 kB\nSwapCached:            0 kB\n"
           b"SwapTotal:             0 kB\nSwapFree:              0 kB\n")
PSI_IDLE = (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
VMSTAT = b"nr_free_pages 380985\nnr_zone_inactive_anon 1127\npgfault 2380115\noom_kill 0\n"
#: What the sysdir, memory and kernel probes read through the agent, healthy (Debian's modes).
HOST_FILES: dict[str, Node] = {
    "/etc/passwd": file_node(b"root:x:0:0:root:/root:/bin/bash\n"
                             b"sampleapp:x:999:999::/nonexistent:/usr/sbin/nologin\n", 0o644),
    "/etc/group": file_node(b"root:x:0:\nshadow:x:42:\nsampleapp:x:999:\n", 0o644),
    # sampleapp's ReadWritePaths=, as the template's image creates it.
    "/var/lib/sampleapp": Node("dir", mode=0o750, uid=SAMPLEAPP_ID, gid=SAMPLEAPP_ID),
    "/etc/shadow": file_node(b"root:*:19700:0:99999:7:::\n", 0o640, gid=SHADOW_GID),
    "/etc/gshadow": file_node(b"root:*::\nshadow:*::\n", 0o640, gid=SHADOW_GID),
    "/etc/sudoers": file_node(b"root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n", 0o440),
    "/etc/sudoers.d/README": file_node(b"# files in this directory are read by sudo\n", 0o440),
    "/proc/meminfo": file_node(MEMINFO, 0o444),
    "/proc/pressure/memory": file_node(PSI_IDLE, 0o444),
    "/proc/vmstat": file_node(VMSTAT, 0o444),
    "/proc/sys/kernel/tainted": file_node(b"0\n", 0o444),
}


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

    Its tree holds :data:`HOST_FILES`, then ``files`` (default: the template's /etc/fstab; a path of
    both takes ``files``' version) and ``existing`` as the symlinks udev makes; with ``existing`` None
    every other path exists too (for manifest and disk_usage). Disks are
    half full unless ``disk`` says otherwise; ``jsonl`` cans jsonl_check (default: 3 good lines);
    ``big`` cans big_files; ``pack`` answers ``entries``, ``missing_paths`` and ``placeholders`` and
    leaves ``tar`` for fetch; ``errors`` maps a method name to the exception it raises.
    """
    reports = dict(jsonl or {})
    agent = fake_agent.FakeAgent(
        files={**HOST_FILES, **({"/etc/fstab": TEMPLATE_FSTAB} if files is None else files)},
        names={**fake_agent.NAMES, SHADOW_GID: "shadow", SAMPLEAPP_ID: "sampleapp"},
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
    # Every package ships its paths as they are: a healthy host's packaged files are untouched.
    agent.answers["deb_meta"] = lambda _deb, paths: shipped_as_they_are(agent, paths)
    return agent


def shipped_as_they_are(agent: fake_agent.FakeAgent, paths: Sequence[str]) -> DebMeta:
    """A ``deb_meta`` answer that ships each existing path of ``paths`` with its owner and mode now."""
    found = agent.manifest(list(paths), recursive=False)
    return DebMeta(tuple(DebEntry(e.path, e.type, e.mode, e.uid, e.gid, e.owner, e.group)
                         for e in found.entries), found.missing)


#: The name baseline and doctor tests import the builder by.
FakeAgent = target_agent
