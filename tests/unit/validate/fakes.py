"""Fakes for validation tests: a scripted guest behind a FakeTransport, probes, and a fake clock.

``FakeGuest`` answers the ``sh -c CMD`` commands testinfra sends (systemctl, test, uname, ss, curl, config
tests) like a small Debian guest with systemd, plus the argv commands of the guest load (systemd-run,
systemctl stop/is-active). Tests flip its fields to break things. Nothing waits and nothing runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from orchestrator.model import IssueKind, ProbeResult, Severity

Answer = tuple[int, bytes, bytes]

OS_RELEASE = b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
SS_HEADER = b"State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"


@dataclass
class FakeGuest:
    systemd: bool = True
    active: set[str] = field(default_factory=lambda: {"nginx.service"})
    enabled: set[str] = field(default_factory=lambda: {"nginx.service"})
    #: "address:port" of listening TCP sockets as ss prints them.
    listening: list[str] = field(default_factory=lambda: ["0.0.0.0:80", "[::]:80"])
    #: URL -> HTTP status curl reports.
    http: dict[str, int] = field(default_factory=lambda: {"http://127.0.0.1:80/": 200})
    #: Exact shell command -> answer, checked before everything else.
    commands: dict[str, Answer] = field(default_factory=dict)
    has_stress: bool = True
    load_running: bool = False
    load_stops: list[str] = field(default_factory=list)
    #: Called for every command; may raise to simulate a transport fault.
    fault: Callable[[tuple[str, ...]], None] | None = None

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> Answer:  # noqa: PLR0911 - dispatch
        if self.fault is not None:
            self.fault(argv)
        if argv[:2] == ("sh", "-c"):
            return self.shell(argv[2])
        if argv[0] == "systemd-run":
            if not self.systemd:
                return 1, b"", b"System has not been booted with systemd as init system (PID 1).\n"
            if not self.has_stress:
                return 1, b"", b"Job for vmrepair-load.service failed (203/EXEC)\n"
            self.load_running = True
            return 0, b"", b""
        if argv[:3] == ("systemctl", "is-active", "--quiet"):
            return (0 if self.load_running else 3), b"", b""
        if argv[:3] == ("systemctl", "--no-block", "stop"):
            self.load_stops.append(argv[-1])
            was_running, self.load_running = self.load_running, False
            return (0 if was_running else 5), b"", b"" if was_running else b"Unit not loaded.\n"
        return 127, b"", f"{argv[0]}: command not found\n".encode()

    def shell(self, cmd: str) -> Answer:  # noqa: PLR0911 - one return per faked command
        if cmd in self.commands:
            return self.commands[cmd]
        simple: dict[str, Answer] = {
            "uname -s": (0, b"Linux\n", b""),
            "uname -m": (0, b"x86_64\n", b""),
            "cat /etc/os-release": (0, OS_RELEASE, b""),
            "test -d /run/systemd/system/": (0 if self.systemd else 1, b"", b""),
            "command -v command": (0, b"command\n", b""),
            "command -v ss": (0, b"/usr/bin/ss\n", b""),
            "/usr/bin/ss --numeric --listening --tcp": (0, self._ss(), b""),
            "nginx -t": (0, b"", b"nginx: configuration file /etc/nginx/nginx.conf test is successful\n"),
        }
        if cmd in simple:
            return simple[cmd]
        if m := re.fullmatch(r"systemctl is-active (\S+)", cmd):
            if not self.systemd:
                return 1, b"", b"Failed to connect to bus: No such file or directory\n"
            return (0, b"active\n", b"") if m[1] in self.active else (3, b"inactive\n", b"")
        if m := re.fullmatch(r"systemctl is-enabled (\S+)", cmd):
            return (0, b"enabled\n", b"") if m[1] in self.enabled else (1, b"disabled\n", b"")
        if cmd.startswith("curl "):
            url = cmd.rsplit(maxsplit=1)[-1]
            if url not in self.http:
                return 7, b"000", b"curl: (7) Failed to connect to 127.0.0.1 port 80: Connection refused\n"
            return 0, str(self.http[url]).encode(), b""
        return 127, b"", f"sh: 1: {cmd.split(maxsplit=1)[0]}: not found\n".encode()

    def _ss(self) -> bytes:
        rows = [f"LISTEN 0      511    {addr:<20} 0.0.0.0:*\n".encode() for addr in self.listening]
        return SS_HEADER + b"".join(rows)




def result(probe: str, ok: bool = True, component: str = "nginx", *, summary: str = "",
           unavailable: bool = False) -> ProbeResult:
    return ProbeResult(probe=probe, component=component, ok=ok, kind=IssueKind.UNIT_FAILED,
                       severity=Severity.CRITICAL, subject=probe.partition(":")[2],
                       summary=summary or ("ok" if ok else "broken"), is_unavailable=unavailable)


@dataclass
class FakeProbes:
    """A ProbeRunner whose results come from ``state`` (probe -> ok) and may raise on demand."""

    state: dict[str, bool] = field(default_factory=lambda: {
        "unit:nginx.service": True, "config:nginx": True, "http:http://127.0.0.1:80/": True,
        "unit:cron.service": True})
    components: dict[str, str] = field(default_factory=lambda: {"unit:cron.service": "cron"})
    #: Called before each run_all()/run_probe(); may raise or flip ``state`` (the clock is in the test).
    before: Callable[[str], None] | None = None
    calls: list[str] = field(default_factory=list)
    #: Probes that cannot run (their ``state`` is ignored).
    unavailable: frozenset[str] = frozenset()

    def _result(self, name: str) -> ProbeResult:
        if name in self.unavailable:
            return result(name, False, self.components.get(name, "nginx"), unavailable=True)
        return result(name, self.state[name], self.components.get(name, "nginx"))

    def run_all(self) -> list[ProbeResult]:
        self.calls.append("*")
        if self.before is not None:
            self.before("*")
        return [self._result(name) for name in self.state]

    def run_components(self, components: Collection[str]) -> list[ProbeResult]:
        return [r for r in self.run_all() if r.component in components]

    def run_probe(self, name: str) -> ProbeResult:
        self.calls.append(name)
        if self.before is not None:
            self.before(name)
        if name not in self.state:
            raise KeyError(name)
        return self._result(name)



@dataclass
class FakeClock:
    """Monotonic time that moves only when the code under test sleeps (or a test calls advance)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
