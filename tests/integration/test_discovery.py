"""Every service of a host is watched without configuration (issue 11), on real VMs and on the CI
machine itself: discovery finds what runs, a configured component the host lacks raises nothing, a
healthy host raises nothing, and what the baseline recorded stays watched after it vanishes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.baseline.record import record_baseline
from orchestrator.components.config import ComponentFile, WatchFile, build_watch_config
from orchestrator.discover.resolve import Resolution, resolve_for
from orchestrator.model import IssueKind, Severity
from orchestrator.targets.spec import parse_target
from orchestrator.transport.base import Transport
from tests.integration.helpers import detect, fresh_patient, lent_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"


@pytest.fixture(scope="module")
def patient(probe_patient: str) -> Iterator[str]:
    yield from lent_patient(probe_patient)   # conftest: shared by the modules that only probe


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(app, patient, HEALTHY)


def resolve(app: App, name: str, ssh: Transport) -> Resolution:
    agent = RemoteAgent(ssh)
    try:
        return resolve_for(app.settings, app.state, parse_target(f"vm:{name}").slug, ssh, agent)
    finally:
        agent.cleanup()


def record(app: App, name: str, ssh: Transport) -> None:
    """Record a baseline of the patient, with the components resolution finds there."""
    resolution = resolve(app, name, ssh)
    agent = RemoteAgent(ssh)
    try:
        record_baseline(app.settings, parse_target(f"vm:{name}").slug, ssh, agent, resolution.watch)
    finally:
        agent.cleanup()


def test_the_template_is_discovered_and_healthy(app: App, fresh: str) -> None:
    with app.vms.transport(fresh) as ssh:
        resolution, issues = detect(app, fresh, ssh)
    comps = {c.name: c for c in resolution.watch.components}
    assert issues == [], json.dumps(issues, indent=1)
    for name in ("nginx", "sampleapp", "sshd", "cron", "rsyslog"):
        assert "discovered" in comps[name].origin, comps[name]
    assert {"dbus", "systemd-journald", "systemd-logind"} <= set(comps)
    app_comp = comps["sampleapp"]
    assert (app_comp.user, app_comp.ports, app_comp.vital) == ("sampleapp", (8080,), True)
    assert "/var/lib/sampleapp" in app_comp.writable_paths
    assert "/etc/default/sampleapp" in app_comp.config_paths
    assert comps["nginx"].ports == (80,) and comps["sshd"].ports == (22,)
    assert not comps["dbus"].vital and "dbus.socket" in comps["dbus"].sockets
    assert resolution.absent == ()


def test_a_configured_service_the_host_lacks_raises_nothing(app: App, fresh: str) -> None:
    watch = build_watch_config(WatchFile(components=[ComponentFile(
        name="redis", units=["redis-server.service"], http=[{"url": "http://127.0.0.1:6379/"}])]))
    settings = dataclasses.replace(app.settings, watch=watch)
    own = App(settings)
    try:
        with own.vms.transport(fresh) as ssh:
            resolution, issues = detect(own, fresh, ssh)
    finally:
        own.close()
    assert resolution.absent == ("redis",)
    assert issues == [] and "redis" not in {c.name for c in resolution.watch.components}


def test_a_service_removed_after_the_baseline_is_still_watched(app: App, fresh: str) -> None:
    with app.vms.transport(fresh) as ssh:
        record(app, fresh, ssh)
        # An admin removes sampleapp's unit file: discovery no longer finds the service.
        ssh.check(["systemctl", "disable", "--now", "--", "sampleapp.service"], timeout=120)
        ssh.check(["rm", "-f", "--", "/etc/systemd/system/sampleapp.service"])
        ssh.check(["systemctl", "daemon-reload"], timeout=120)
        resolution, issues = detect(app, fresh, ssh)
    comps = {c.name: c for c in resolution.watch.components}
    assert comps["sampleapp"].origin in ("baseline", "configured")
    probes = {i["probe"]: i for i in issues}
    assert probes["unit:sampleapp.service"]["severity"] == Severity.CRITICAL
    assert probes["unit:sampleapp.service"]["kind"] == IssueKind.UNIT_INACTIVE


def test_detect_local_on_the_ci_machine_raises_nothing_critical() -> None:
    """Read-only, on the machine the tests run on: it has none of the template's services (and may
    have no systemd at all). Before issue 11: three critical http_down for nginx and sampleapp."""
    result = subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import main; "
                             "raise SystemExit(main(['detect', '--target', 'local', '--json']))"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    critical = [i for i in data["issues"] if i["severity"] == "critical"]
    assert critical == [], json.dumps(critical, indent=1)
    assert not any(i["kind"] == "http_down" for i in data["issues"])


def test_changes_since_the_baseline_are_seen(app: App, fresh: str) -> None:
    """Faults no other probe sees: a mode changed with the file intact, a unit disabled while it runs."""
    with app.vms.transport(fresh) as ssh:
        record(app, fresh, ssh)
        _, before = detect(app, fresh, ssh)
        ssh.check(["chmod", "0600", "--", "/etc/nginx/mime.types"])
        ssh.check(["systemctl", "disable", "--", "cron.service"], timeout=120)
        _, issues = detect(app, fresh, ssh)
    assert before == [], json.dumps(before, indent=1)
    probes = {i["probe"]: i for i in issues}
    modes = probes["modes:nginx"]
    assert (modes["kind"], modes["severity"]) == (IssueKind.PERMISSIONS, Severity.CRITICAL)
    assert "/etc/nginx/mime.types: file 0644 0:0 -> file 0600 0:0" in modes["evidence"]["changed"]
    cron = probes["unit:cron.service"]
    assert (cron["kind"], cron["severity"]) == (IssueKind.UNIT_INACTIVE, Severity.WARNING)
    assert "will not start at the next boot" in cron["summary"]
