"""A target that answers discovery's commands from real output recorded on the template guest
(``data/``: systemctl list-units and show, ss -ltnp, dpkg-query conffiles, Debian 12)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.transport.fake import FakeTransport

DATA = Path(__file__).parent / "data"
NO_SYSTEMD = b"System has not been booted with systemd as init system (PID 1). Can't operate.\n"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def blocks() -> dict[str, str]:
    """The recorded ``systemctl show`` blocks by unit Id."""
    out = {}
    for block in (DATA / "show.txt").read_text().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            out[props["Id"]] = block.strip() + "\n"
    return out


@dataclass
class DiscoveryHost:
    """Answers list-units/show/ss/dpkg-query; every call is recorded in ``calls``."""

    list_units: str = field(default_factory=lambda: _read("list-units.txt"))
    shows: dict[str, str] = field(default_factory=blocks)
    ss: str = field(default_factory=lambda: _read("ss.txt"))
    conffiles: str = field(default_factory=lambda: _read("conffiles.txt"))
    has_systemd: bool = True
    show_fails: bool = False
    owners: dict[str, str] = field(default_factory=lambda: {
        "/lib/systemd/system/nginx.service": "nginx-common",
        "/lib/systemd/system/ssh.service": "openssh-server",
        "/lib/systemd/system/cron.service": "cron",
    })
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:  # noqa: PLR0911 - one answer per command
        self.calls.append(argv)
        if argv[0] == "systemctl":
            if not self.has_systemd:
                return 1, b"", NO_SYSTEMD
            if argv[1] == "list-units":
                return 0, self.list_units.encode(), b""
            if self.show_fails:
                return 1, b"", b"Failed to get properties: Connection timed out\n"
            units = argv[argv.index("--") + 1:]
            return 0, "\n".join(self.shows.get(u, _inactive(u)) for u in units).encode(), b""
        if argv[0] == "ss":
            return 0, self.ss.encode(), b""
        if argv[:2] == ("dpkg-query", "-S"):
            paths = argv[3:]
            found = [f"{self.owners[p]}: {p}" for p in paths if p in self.owners]
            return (0 if len(found) == len(paths) else 1), "\n".join(found).encode(), b""
        if argv[:2] == ("dpkg-query", "-W"):
            return 0, self.conffiles.encode(), b""
        return 127, b"", f"{argv[0]}: not found\n".encode()

    def transport(self) -> FakeTransport:
        return FakeTransport(self)


def _inactive(unit: str) -> str:
    load = "not-found" if unit.startswith("missing") else "loaded"
    return (f"Id={unit}\nNames={unit}\nLoadState={load}\nActiveState=inactive\nSubState=dead\n"
            f"UnitFileState=static\nFragmentPath=/lib/systemd/system/{unit}\nTransient=no\nMainPID=0\n")
