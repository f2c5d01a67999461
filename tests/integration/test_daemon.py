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


# -- self-healing on the guest's own systemd (issue 16) ------------------------------------------------
#: An optional service of the guest that vmrepair did not ship: it cannot start while the marker
#: exists (an outside condition: a mount, a peer), and systemd restarts it every second.
REPORTGEN_UNIT = """\
[Unit]
Description=report generator (vmrepair test service)
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'if [ -e /run/reportgen.fail ]; then echo "reportgen: spool unavailable" >&2; \
exit 1; fi; exec sleep infinity'
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
REPORTGEN_CONF = "# reportgen settings\nschedule=daily\n"
#: At boot the marker makes it fail once and stay failed (no restarts): what boot diagnostics see.
NO_RESTART = "[Service]\nRestart=no\n"
SELFHEAL_CONFIG = """\
daemon:
  policy: auto-repair
  # Detection once at start, then out of the way: the health monitor's own path is under test.
  detect_interval_s: 3600
health:
  interval_s: 2
  poll_attempts: 1
  failures_before_restart: 2
  restarts_before_escalation: 2
  quarantine_after_escalations: 100
  quarantine_after_unit_restarts: {loop}
gate:
  deadline_s: 60
watch:
  components:
    - name: reportgen
      vital: false
      units: [reportgen.service]
      config_paths: [/etc/reportgen.conf]
"""


def _status(ssh: Transport) -> dict[str, object]:
    status = ssh.run(["vmrepair", "status", "--json"], timeout=120)
    assert status.exit_status == 0, f"{status.stderr_text}\n{_journal(ssh)}"
    report: dict[str, object] = json.loads(status.stdout)
    return report


def _restart_daemon(ssh: Transport, tmp: Path, config: str) -> None:
    ssh.run(["systemctl", "stop", "vmrepair"], timeout=60)
    _put(ssh, tmp / "config.yaml", config, "/etc/vmrepair/config.yaml", mode=0o600)
    started = ssh.run(["systemctl", "start", "vmrepair"], timeout=320)
    assert started.succeeded, f"{started.stderr_text}\n{_journal(ssh)}"


def _install_reportgen(ssh: Transport, tmp: Path) -> None:
    _put(ssh, tmp / "reportgen.service", REPORTGEN_UNIT, "/etc/systemd/system/reportgen.service", mode=0o644)
    _put(ssh, tmp / "reportgen.conf", REPORTGEN_CONF, "/etc/reportgen.conf", mode=0o644)
    ssh.check(["systemctl", "daemon-reload"])
    ssh.check(["systemctl", "enable", "--now", "reportgen"], timeout=120)


def test_start_up_reinstalls_a_vital_package_file_and_reports_an_optional_component_reduced(
        app: App, daemon_guest: str, tmp_path: Path) -> None:
    """nginx's binary deleted while nginx runs (dpkg still says "installed"): the daemon's boot
    diagnostics reinstall its package from the apt cache, through a transient unit, although the
    daemon's own unit keeps /usr read-only. reportgen (optional) failing at start: reported, not
    touched, and `vmrepair status` says the host runs in reduced mode."""
    with app.vms.transport(daemon_guest) as ssh:
        ssh.run(["systemctl", "stop", "vmrepair"], timeout=60)
        _install_reportgen(ssh, tmp_path)
        owner = ssh.check(["dpkg-query", "-S", "/usr/sbin/nginx"]).stdout_text.split(":")[0].strip()
        cached = ssh.run(["sh", "-c", f"ls /var/cache/apt/archives/{owner}_*.deb"]).stdout_text
        assert cached.strip(), f"the template's apt cache lost {owner}'s .deb: nothing to reinstall from"
        before = ssh.check(["sha256sum", "/usr/sbin/nginx"]).stdout_text.split()[0]
        ssh.check(["rm", "-f", "/usr/sbin/nginx"])
        ssh.check(["install", "-D", "-m", "0644", "/dev/null", "/run/reportgen.fail"])
        ssh.check(["install", "-d", "-m", "0755", "/run/systemd/system/reportgen.service.d"])
        _put(ssh, tmp_path / "norestart.conf", NO_RESTART,
             "/run/systemd/system/reportgen.service.d/norestart.conf", mode=0o644)
        ssh.check(["systemctl", "daemon-reload"])
        ssh.run(["systemctl", "restart", "reportgen"], timeout=60)
        assert ssh.run(["systemctl", "is-failed", "reportgen"]).stdout_text.strip() == "failed"

        began = time.monotonic()
        _restart_daemon(ssh, tmp_path, SELFHEAL_CONFIG.format(loop=1000))
        print(f"daemon start with a reinstall: {time.monotonic() - began:.1f} s")
        assert ssh.check(["systemctl", "show", "-p", "ProtectSystem", "vmrepair"]).stdout_text.strip() \
            == "ProtectSystem=yes"
        assert ssh.check(["sha256sum", "/usr/sbin/nginx"]).stdout_text.split()[0] == before
        assert ssh.run(["dpkg", "--verify", owner]).stdout_text.strip() == ""
        records = _audit(ssh)
        reinstalls = [r.get("status") for r in records if r.get("event") == "recovery"
                      and r.get("component") == "nginx" and _action(r) == "reinstall"]
        assert reinstalls == ["fixed"], records[-10:]
        journal = ssh.run(["journalctl", "--no-pager", "-o", "cat", "-n", "400"]).stdout_text
        assert "vmrepair-reinstall-" in journal, "apt did not run as a transient unit"

        report = _status(ssh)
        ready = report["ready"]
        assert isinstance(ready, dict)
        diagnosis = {c["component"]: c for c in ready["startup"]["boot-diagnostics"]["components"]}
        assert (diagnosis["nginx"]["found"], diagnosis["nginx"]["state"]) == ("broken", "healthy")
        assert diagnosis["reportgen"]["vital"] is False and diagnosis["reportgen"]["actions"] == []
        assert ready["mode"] == "reduced", ready
        assert [(n["component"], n["vital"]) for n in ready["not_working"]] == [("reportgen", False)]
        shown = ssh.run(["vmrepair", "status"], timeout=120)
        text = shown.stdout_text + shown.stderr_text   # status lines on stderr, tables on stdout
        assert "mode: reduced - running with reduced features" in text, text
        # Nothing was done for the optional component: still failed, its marker still there.
        assert ssh.run(["systemctl", "is-failed", "reportgen"]).stdout_text.strip() == "failed"


def _action(record: dict[str, object]) -> object:
    details = record.get("details")
    return details.get("action") if isinstance(details, dict) else None


def _health_events(ssh: Transport, component: str) -> list[str]:
    """The health monitor's events of ``component``, oldest first (the audit log's order)."""
    events = []
    for record in _audit(ssh):
        details = record.get("details")
        if record.get("component") == component and isinstance(details, dict) and details.get("health_event"):
            events.append(str(details["health_event"]))
    return events


def test_the_health_monitor_retries_restarts_then_escalates_in_that_order(
        app: App, daemon_guest: str, tmp_path: Path) -> None:
    """sampleapp keeps running but answers 503 (its interaction log made immutable): two failed polls,
    a restart, two more, a second restart, two more, and an escalation, in that order in the audit
    log, with the detector out of the way (one detection at start)."""
    log = "/var/lib/sampleapp/interactions.jsonl"
    with app.vms.transport(daemon_guest) as ssh:
        ssh.run(["rm", "-f", "/run/reportgen.fail"])
        _restart_daemon(ssh, tmp_path, SELFHEAL_CONFIG.format(loop=1000))
        began = time.monotonic()
        while not isinstance(_status(ssh)["issues"].get("last_detection"), dict):  # type: ignore[union-attr]
            assert time.monotonic() - began < 120, "the start-up detection never ran"
            time.sleep(2)
        seen = len(_health_events(ssh, "sampleapp"))
        ssh.check(["chattr", "+i", log])
        try:
            began = time.monotonic()
            while "escalated" not in _health_events(ssh, "sampleapp")[seen:]:
                assert time.monotonic() - began < 240, (
                    f"no escalation; events: {_health_events(ssh, 'sampleapp')[seen:]}\n{_journal(ssh)}")
                time.sleep(3)
            print(f"escalated {time.monotonic() - began:.1f} s after the fault")
        finally:
            ssh.check(["chattr", "-i", log])
        events = _health_events(ssh, "sampleapp")[seen:]
        upto = events[:events.index("escalated") + 1]
        # Acting events in order; each action after failures_before_restart (2) failed polls.
        assert [e for e in upto if e != "failed"] == ["restarted", "restarted", "escalated"], upto
        assert upto == ["failed", "failed", "restarted", "failed", "failed", "restarted",
                        "failed", "failed", "escalated"], upto


def test_a_flapping_optional_component_is_quarantined_then_released_exactly(
        app: App, daemon_guest: str, tmp_path: Path) -> None:
    """reportgen restarting every second (systemd's Restart=on-failure) is a restart loop: the daemon
    quarantines it (stopped, disabled, its config moved aside, a readable log); once the cause is gone,
    `vmrepair quarantine release` puts the config back byte for byte, re-enables and starts the unit
    and verifies it."""
    with app.vms.transport(daemon_guest) as ssh:
        ssh.run(["systemctl", "stop", "vmrepair"], timeout=60)
        ssh.run(["rm", "-f", "/run/systemd/system/reportgen.service.d/norestart.conf"])
        ssh.check(["systemctl", "daemon-reload"])
        before = ssh.check(["stat", "-c", "%a %u %g", "/etc/reportgen.conf"]).stdout_text
        digest = ssh.check(["sha256sum", "/etc/reportgen.conf"]).stdout_text.split()[0]
        ssh.check(["install", "-D", "-m", "0644", "/dev/null", "/run/reportgen.fail"])
        ssh.run(["systemctl", "restart", "reportgen"], timeout=60)
        _restart_daemon(ssh, tmp_path, SELFHEAL_CONFIG.format(loop=3))
        began = time.monotonic()
        while ("quarantine", "reportgen") not in [(r.get("event"), r.get("component")) for r in _audit(ssh)]:
            assert time.monotonic() - began < 180, f"not quarantined\n{_journal(ssh)}"
            time.sleep(3)
        print(f"quarantined {time.monotonic() - began:.1f} s after the loop began")
        assert ssh.run(["systemctl", "is-enabled", "reportgen"]).stdout_text.strip() != "enabled"
        assert ssh.run(["systemctl", "is-active", "reportgen"]).stdout_text.strip() != "active"
        assert not ssh.run(["test", "-e", "/etc/reportgen.conf"]).succeeded
        listed = ssh.check(["vmrepair", "quarantine", "list"], timeout=120).stdout_text
        assert "reportgen" in listed and "restart loop" in listed, listed
        logbook = ssh.check(["sh", "-c", "cat /var/lib/vmrepair/quarantine/QUARANTINE.md"]).stdout_text
        assert "reportgen" in logbook and "restart loop" in logbook, logbook

        ssh.check(["rm", "-f", "/run/reportgen.fail"])
        ssh.check(["systemctl", "stop", "vmrepair"], timeout=60)   # nothing acts behind the release
        released = ssh.run(["vmrepair", "quarantine", "release", "reportgen"], timeout=300)
        assert released.succeeded, f"{released.stdout_text}\n{released.stderr_text}"
        assert ssh.check(["sha256sum", "/etc/reportgen.conf"]).stdout_text.split()[0] == digest
        assert ssh.check(["stat", "-c", "%a %u %g", "/etc/reportgen.conf"]).stdout_text == before
        assert ssh.run(["systemctl", "is-enabled", "reportgen"]).stdout_text.strip() == "enabled"
        assert ssh.run(["systemctl", "is-active", "reportgen"]).stdout_text.strip() == "active"
        events = [(r.get("event"), r.get("status")) for r in _audit(ssh) if r.get("component") == "reportgen"]
        assert ("quarantine_release", "released") in events, events[-8:]
