"""A scripted target for quarantine and boot-diagnostics tests: the repair tests' FakeAgent file tree
and FakeVm command handler, plus a systemd that remembers what stop/start/enable/disable did (so
probes after a release or a remediation see the units' real state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.components.config import WatchConfig
from orchestrator.model import Component, HttpCheck
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import ACTIVE, NOT_FOUND, show_output
from tests.unit.repair.fakes import FakeAgent, FakeVm, Node

ROOT = "/var/lib/vmrepair/quarantine"
NGINX = Component(
    name="nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
    unit_paths=("/etc/systemd/system/nginx.service.d",), config_test=("nginx", "-t"),
    http=(HttpCheck("http://127.0.0.1:80/"),), packages=("nginx",),
)
APP = Component(
    name="sampleapp", units=("sampleapp.service",),
    config_paths=("/etc/default/sampleapp",),
    unit_paths=("/etc/systemd/system/sampleapp.service", "/etc/systemd/system/sampleapp.service.d"),
)
WATCH = WatchConfig((NGINX, APP))


@dataclass
class Systemd:
    """Unit properties by name, changed by the verbs the code under test runs; ``fail`` maps
    (verb, unit) to the exit status to answer instead."""

    units: dict[str, dict[str, str]] = field(default_factory=dict)
    fail: dict[tuple[str, str], int] = field(default_factory=dict)
    present: bool = True

    def __call__(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if not self.present:
            return 1, b"", b"System has not been booted with systemd as init system (PID 1).\n"
        verb, unit = argv[1], argv[-1]
        if (verb, unit) in self.fail:
            return self.fail[verb, unit], b"", f"Failed to {verb} {unit}: Access denied\n".encode()
        if verb == "show":
            # One block per unit after "--", separated by blank lines, as systemctl prints them.
            asked = argv[argv.index("--") + 1:]
            return 0, b"\n".join(show_output({"Id": u, **self.units.get(u, ACTIVE)}) for u in asked), b""
        props = self.units.setdefault(unit, dict(ACTIVE)) if argv[-2:-1] == ("--",) else {}
        changes = {"stop": {"ActiveState": "inactive", "SubState": "dead"},
                   "start": {"ActiveState": "active", "SubState": "running"},
                   "disable": {"UnitFileState": "disabled"}, "enable": {"UnitFileState": "enabled"}}
        props.update(changes.get(verb, {}))
        return 0, b"", b""

    def gone(self, unit: str) -> None:
        self.units[unit] = dict(NOT_FOUND)


@dataclass
class Target:
    agent: FakeAgent
    vm: FakeVm
    systemd: Systemd
    transport: FakeTransport
    audit: MemoryAuditSink

    def systemctl_calls(self, *verbs: str) -> list[tuple[str, ...]]:
        return [a for a in self.transport.argvs if a[0] == "systemctl" and a[1] in verbs]

    def snapshot(self) -> dict[str, tuple[str, bytes, int, int, int, str | None]]:
        """Every path outside the quarantine root, with what a release must restore exactly."""
        return {p: (n.type, n.data, n.mode, n.uid, n.gid, n.link) for p, n in sorted(self.agent.fs.items())
                if not (p.startswith(ROOT) or ROOT.startswith(p.rstrip("/") + "/"))}


def populate(agent: FakeAgent) -> None:
    agent.put("/etc/nginx/nginx.conf", Node("file", b"events {}\nhttp { include sites-enabled/*; }\n"))
    agent.put("/etc/nginx/sites-available/default", Node("file", b"server { listen 80; }\n", 0o640, 0, 33))
    agent.symlink("/etc/nginx/sites-enabled/default", "../sites-available/default")
    agent.put("/etc/nginx/private", Node("dir", mode=0o750, uid=0, gid=33))
    agent.put("/etc/nginx/private/key.pem", Node("file", b"secret", 0o600, 33, 33))
    agent.put("/etc/systemd/system/nginx.service.d/limits.conf", Node("file", b"[Service]\nLimitNOFILE=9\n"))
    agent.put("/etc/default/sampleapp", Node("file", b"PORT=8080\n"))
    agent.put("/etc/systemd/system/sampleapp.service", Node("file", b"[Service]\nExecStart=/bin/app\n"))


def make_target() -> Target:
    agent = FakeAgent()
    populate(agent)
    systemd = Systemd()
    vm = FakeVm(agent, answers={("systemctl",): systemd, ("curl",): (0, b"200", b""),
                                ("nginx", "-t"): (0, b"", b"syntax is ok\n")})
    return Target(agent, vm, systemd, vm.transport(), MemoryAuditSink())
