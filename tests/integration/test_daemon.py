"""The daemon on a real guest under systemd: vmrepair is installed from a tarball (the guest has no pip
and no internet), its unit starts as ``Type=notify``, `vmrepair status` reports it ready, and a service
stopped behind its back is repaired in place, with the guest's audit log recording the repair.

What ships: the orchestrator package from this checkout, plus every third-party top-level package
the daemon and the CLI import, taken from this venv's site-packages (same CPython 3.11 ABI as the
guest's python3), byte-compiled here so the guest does not compile under TCG. libvirt is the
exception: the daemon never loads it unless it escalates to a VM repair, but the `vmrepair` console
script imports every subcommand, and the VM commands import libvirt, whose C extension needs
libvirt's shared libraries, which the guest does not have; the guest only repairs itself, so a stub
stands in for it there (any use raises).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.demo.faults import inject
from orchestrator.transport.base import Transport
from tests.integration.helpers import unique_name

pytestmark = pytest.mark.integration

GUEST_SITE = "/usr/local/lib/python3.11/dist-packages"
UNIT = PROJECT_ROOT / "packaging" / "systemd" / "vmrepair.service"
#: From stopping the service to the daemon having restarted it (detection every 5 s, under TCG).
REPAIR_DEADLINE_S = 150.0
#: Modules whose imports decide what the guest needs: the console script and the daemon's lazy paths.
ENTRY_MODULES = ("orchestrator.cli.main", "orchestrator.daemon.__main__", "orchestrator.daemon.wiring",
                 "orchestrator.pipeline.run", "orchestrator.health", "orchestrator.quarantine",
                 "orchestrator.bootdiag", "orchestrator.apply.recovery", "orchestrator.baseline.record",
                 # `vmrepair gate` (a unit's ExecStartPre=) and its agent, imported by the CLI.
                 "orchestrator.gate", "orchestrator.agent.client",
                 # Named on its own: the CLI imports the metrics textfile writer lazily (after a
                 # command), and the guest's daemon serves /metrics through it.
                 "prometheus_client", "orchestrator.metrics.collector", "orchestrator.metrics.textfile")
#: libvirt: see the module docstring; the rest are the venv's install machinery (editable finder).
NOT_SHIPPED = ("libvirt", "libvirt_lxc", "libvirt_qemu", "libvirtmod", "libvirtmod_lxc", "libvirtmod_qemu",
               "orchestrator", "_distutils_hack", "__editable___vmrepair_0_1_0_finder")
CONFIG = """\
daemon:
  policy: auto-repair
  detect_interval_s: 5
# The gate's whole budget (its ExecStartPre= counts against the unit's 90 s start timeout): python3
# and the agent start slowly under TCG.
gate:
  deadline_s: 60
"""
CONSOLE_SCRIPT = """\
#!/usr/bin/python3
import sys
from orchestrator.cli.main import main
sys.exit(main())
"""
LIBVIRT_STUB = '''\
"""Stand-in for libvirt-python in a vmrepair test guest (tests/integration/test_daemon.py): the
daemon there repairs its own host and never uses libvirt. Any use raises libvirtError."""

import itertools

_numbers = itertools.count(1000)
_constants = {}


class libvirtError(Exception):
    def get_error_code(self):
        return VIR_ERR_NO_CONNECT

    def get_error_domain(self):
        return VIR_FROM_NONE

    def get_error_message(self):
        return str(self)


def registerErrorHandler(handler, ctx):
    return None


def open(uri=None):
    raise libvirtError(f"libvirt is not installed in this guest (asked for {uri})")


openReadOnly = open


def __getattr__(name):
    if name.startswith("VIR_"):
        return _constants.setdefault(name, next(_numbers))
    raise AttributeError(name)
'''


def _site_packages_to_ship() -> list[Path]:
    """Top-level packages and modules of site-packages that importing ENTRY_MODULES loads, found by
    asking a fresh interpreter (this one has pytest's modules loaded too)."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    probe = ("import json, sys\n" + "".join(f"import {m}\n" for m in ENTRY_MODULES)
             + "print(json.dumps({n: getattr(m, '__file__', None) for n, m in list(sys.modules.items())}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    found: set[Path] = set()
    for name, file in json.loads(out).items():
        top = name.split(".")[0]
        if file is None or top in NOT_SHIPPED or "." in name:
            continue
        path = Path(file).resolve()
        if site not in path.parents:
            continue
        found.add(path.parent if path.name == "__init__.py" else path)
    return sorted(found)


def _build_payload(staging: Path) -> bytes:
    """An uncompressed tar of a site-packages tree (a gzip would cost the TCG guest more than it saves)."""
    tree = staging / "site"
    tree.mkdir()
    for source in _site_packages_to_ship():
        subprocess.run(["cp", "-a", str(source), str(tree / source.name)], check=True)
    # -L: orchestrator/data/* are links to the top-level playbooks/, vm_templates/ and images/ (the
    # package data); the guest gets real copies, as a wheel would carry them.
    subprocess.run(["cp", "-a", "-L", str(PROJECT_ROOT / "orchestrator"), str(tree / "orchestrator")],
                   check=True)
    (tree / "libvirt.py").write_text(LIBVIRT_STUB)
    # Compiled here with the same CPython minor version: the guest imports without compiling, and
    # the daemon's ProtectSystem=yes would not let it write the caches anyway.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(tree)], check=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # Entry by entry: a "." entry would give the guest's site directory the staging dir's mode.
        for child in sorted(tree.iterdir()):
            tar.add(child, arcname=child.name)
    return buffer.getvalue()


def _put(ssh: Transport, local: Path, content: bytes | str, remote: str, *, mode: int) -> None:
    local.write_bytes(content.encode() if isinstance(content, str) else content)
    ssh.put_file(local, remote, mode=mode)


def _journal(ssh: Transport) -> str:
    return ssh.run(["journalctl", "-u", "vmrepair", "-n", "60", "--no-pager"]).stdout_text


def _audit(ssh: Transport) -> list[dict[str, object]]:
    text = ssh.run(["cat", "/var/log/vmrepair/audit.jsonl"]).stdout_text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _repaired_sampleapp(record: dict[str, object]) -> bool:
    """The daemon's repair run, or the health monitor's restart, of sampleapp."""
    details = record.get("details")
    action = details.get("action") if isinstance(details, dict) else None
    return record.get("component") == "sampleapp" and (
        (record.get("event") == "repair" and record.get("status") == "repaired")
        or (record.get("event") == "recovery" and action == "restart" and record.get("status") == "ok"))


@pytest.fixture(scope="module")
def daemon_guest(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A booted guest with vmrepair installed and its unit started; always destroyed."""
    tmp = tmp_path_factory.mktemp("daemon-guest")
    payload = _build_payload(tmp)
    name = unique_name("daemon")
    app.vms.up(name)
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
            _put(ssh, tmp / "payload.tar", payload, "/root/vmrepair.tar", mode=0o600)
            ssh.check(["install", "-d", "-m", "0755", GUEST_SITE, "/etc/vmrepair"])
            ssh.check(["tar", "-xf", "/root/vmrepair.tar", "-C", GUEST_SITE, "--no-same-owner"], timeout=180)
            _put(ssh, tmp / "vmrepair", CONSOLE_SCRIPT, "/usr/local/bin/vmrepair", mode=0o755)
            _put(ssh, tmp / "vmrepair.service", UNIT.read_bytes(), "/etc/systemd/system/vmrepair.service",
                 mode=0o644)
            _put(ssh, tmp / "config.yaml", CONFIG, "/etc/vmrepair/config.yaml", mode=0o600)
            ssh.check(["systemctl", "daemon-reload"])
            started = ssh.run(["systemctl", "start", "vmrepair"], timeout=320)
            assert started.succeeded, f"{started.stderr_text}\n{_journal(ssh)}"
        yield name
    finally:
        app.vms.destroy(name)


def test_daemon_runs_under_systemd_and_repairs_a_stopped_service(app: App, daemon_guest: str) -> None:
    with app.vms.transport(daemon_guest) as ssh:
        assert ssh.run(["systemctl", "is-active", "vmrepair"]).stdout_text.strip() == "active", _journal(ssh)
        status = ssh.run(["vmrepair", "status", "--json"], timeout=120)
        assert status.exit_status == 0, f"{status.stderr_text}\n{_journal(ssh)}"
        report = json.loads(status.stdout)
        assert report["ready"]["ready"] is True
        assert (report["ready"]["policy"], report["ready"]["target"]) == ("auto-repair", "local")
        assert report["ready"]["startup"]["recovery"]["errors"] == []

        ssh.check(["systemctl", "stop", "sampleapp"])
        began = time.monotonic()
        while True:
            active = ssh.run(["systemctl", "is-active", "sampleapp"]).stdout_text.strip() == "active"
            records = [r for r in _audit(ssh) if _repaired_sampleapp(r)]
            if active and records:
                break
            assert time.monotonic() - began < REPAIR_DEADLINE_S, (
                f"sampleapp not repaired within {REPAIR_DEADLINE_S:.0f} s (active: {active}); "
                f"audit: {json.dumps(_audit(ssh)[-10:], indent=1)}\n{_journal(ssh)}")
            time.sleep(3)
        repaired_after = time.monotonic() - began
        print(f"sampleapp repaired {repaired_after:.1f} s after it was stopped; audit: {records[0]}")
        health = ssh.check(["curl", "-fsS", "http://127.0.0.1:8080/health"])
        assert json.loads(health.stdout) == {"status": "ok"}

        began = time.monotonic()
        ssh.check(["systemctl", "stop", "vmrepair"], timeout=60)
        assert time.monotonic() - began < 15
        assert ssh.run(["systemctl", "is-active", "vmrepair"]).stdout_text.strip() == "inactive"
        result = ssh.run(["systemctl", "show", "-p", "Result", "vmrepair"]).stdout_text.strip()
        assert result == "Result=success"


def _gate_lines(ssh: Transport, unit: str) -> list[str]:
    journal = ssh.run(["journalctl", "-u", unit, "-n", "80", "--no-pager", "-o", "cat"]).stdout_text
    return [line for line in journal.splitlines() if line.startswith("vmrepair gate:")]


def test_a_gated_service_is_refused_start_while_its_pre_start_checks_fail(
        app: App, daemon_guest: str) -> None:
    """`vmrepair watch gate install` puts `vmrepair gate` in sampleapp's ExecStartPre=: a healthy
    sampleapp starts through it; with its interaction log corrupted, systemd refuses the start, the
    journal says why and the audit log records it; `gate remove` takes the drop-in away. (sampleapp,
    not nginx: nginx's own ExecStartPre= `nginx -t` runs before any drop-in's, so a broken nginx config
    never reaches the gate. The daemon is stopped by the test above: nothing repairs behind our back.)"""
    unit = "sampleapp.service"
    dropin = f"/etc/systemd/system/{unit}.d/50-vmrepair-gate.conf"
    log = "/var/lib/sampleapp/interactions.jsonl"
    with app.vms.transport(daemon_guest) as ssh:
        ssh.run(["systemctl", "stop", "vmrepair"], timeout=60)
        ssh.check(["vmrepair", "watch", "gate", "install", unit], timeout=120)
        written = ssh.check(["cat", dropin]).stdout_text
        # "+": root, although sampleapp runs as User=sampleapp (the gate reads root-only config).
        assert f"ExecStartPre=+/usr/local/bin/vmrepair gate {unit}" in written
        began = time.monotonic()
        restarted = ssh.run(["systemctl", "restart", unit], timeout=180)
        print(f"gated restart of a healthy sampleapp: {time.monotonic() - began:.1f} s")
        assert restarted.succeeded, f"{restarted.stderr_text}\n{_gate_lines(ssh, unit)}"
        allowed = f"vmrepair gate: allowing the start of {unit}"
        assert any(line.startswith(allowed) for line in _gate_lines(ssh, unit)), _gate_lines(ssh, unit)

        ssh.check(["cp", "-p", log, "/root/interactions.good"])
        inject(ssh, "jsonl-log", "mixed")   # its own `systemctl restart sampleapp` meets the gate
        assert ssh.run(["systemctl", "is-active", unit]).stdout_text.strip() != "active"
        lines = _gate_lines(ssh, unit)
        refused = f"vmrepair gate: refusing the start of {unit}: jsonl:{log}"
        assert any(line.startswith(refused) for line in lines), lines
        events = [(r.get("event"), r.get("component")) for r in _audit(ssh)]
        assert ("gate_refused", "sampleapp") in events, events[-10:]

        ssh.check(["cp", "-p", "/root/interactions.good", log])
        ssh.check(["vmrepair", "watch", "gate", "remove", unit], timeout=120)
        assert not ssh.run(["test", "-e", dropin]).succeeded
        assert ssh.run(["systemctl", "start", unit], timeout=120).succeeded
