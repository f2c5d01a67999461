"""The component probes (dpkg, symlinks, writable, port, unit) on a real guest from the default template: all
pass on the healthy patient, and each fails with its kind once the fault an admin makes is injected.
Components are built by hand (discovery, which fills users, writable paths and ports, is elsewhere).
Each case starts from the healthy snapshot."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.detect.unit_loops import read_loops
from orchestrator.detect.units import evaluate, show_unit
from orchestrator.model import Component, IssueKind, ProbeResult
from orchestrator.systemd.control import quiet_runner
from orchestrator.systemd.counter import own_the_start
from orchestrator.transport.base import Transport
from tests.integration.helpers import fresh_patient, lent_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
DATA = "/var/lib/sampleapp"
NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                  packages=("nginx", "nginx-common"), ports=(80,))
SAMPLEAPP = Component("sampleapp", units=("sampleapp.service",), user="sampleapp", group="sampleapp",
                      writable_paths=(DATA,))
WATCH = WatchConfig((NGINX, SAMPLEAPP), mounts=())
PROBES = ("dpkg:nginx", "pkgmeta:nginx", "symlinks:nginx", "port:nginx:80", f"writable:{DATA}")
#: nginx-common conffiles that bookworm's nginx.conf does not include: removing one breaks nothing
#: but dpkg's record (the first of them the package has is used).
UNUSED_CONFFILES = ("/etc/nginx/win-utf", "/etc/nginx/koi-win", "/etc/nginx/koi-utf")
MERGE_UNIT = "vmrepair-it-merge.service"
MERGE_FIXED = "/run/vmrepair-it-merge-fixed"


@pytest.fixture(scope="module")
def patient(probe_patient: str) -> Iterator[str]:
    yield from lent_patient(probe_patient)   # conftest: shared by the modules that only probe


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(app, patient, HEALTHY)


@contextlib.contextmanager
def on(app: App, name: str) -> Iterator[tuple[Detector, Transport]]:
    """A detector of WATCH on the guest over SSH and the real agent, and the SSH transport."""
    with app.vms.transport(name) as ssh:
        agent = RemoteAgent(ssh)
        try:
            yield Detector(WATCH, ssh, agent), ssh
        finally:
            agent.close()


def _failed(result: ProbeResult, kind: IssueKind) -> None:
    assert (result.ok, result.is_unavailable, result.kind) == (False, False, kind), result


def _conffiles(ssh: Transport, package: str) -> set[str]:
    # ${Conffiles} lists " PATH MD5" per conffile, one per line.
    listed = ssh.check(["dpkg-query", "-W", "-f", r"${Conffiles}\n", "--", package]).stdout_text
    return {word for word in listed.split() if word.startswith("/")}


def _packaged_regular_file(ssh: Transport, package: str) -> str:
    """A regular file (no symlink, no directory, no conffile) the package ships under /usr/share."""
    conffiles = _conffiles(ssh, package)
    listed = ssh.check(["dpkg-query", "-L", "--", package]).stdout_text.splitlines()
    candidates = [p for p in listed if p.startswith("/usr/share/") and p not in conffiles]
    assert candidates, f"{package} ships nothing under /usr/share"
    # find -P (the default) does not follow symlinks: -type f keeps the regular files. run, not check:
    # find exits 1 when a listed path is missing, and still prints the others.
    found = ssh.run(["find", *candidates, "-maxdepth", "0", "-type", "f"]).stdout_text.split()
    assert found, f"none of {package}'s files under /usr/share is a regular file"
    return found[0]


def test_the_healthy_patient_passes_every_component_probe(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, _):
        assert set(PROBES) <= set(detector.probe_names)
        results = detector.run().results
    by_probe = {r.probe: r for r in results}
    for name in PROBES:
        assert by_probe[name].ok and not by_probe[name].is_unavailable, by_probe[name]
    # The default site is enabled by a symlink, which was followed and found.
    assert int(by_probe["symlinks:nginx"].evidence["links"]) >= 1


def test_a_deleted_site_leaves_sites_enabled_dangling(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, ssh):
        ssh.check(["rm", "--", "/etc/nginx/sites-available/default"])
        result = detector.run_probe("symlinks:nginx")
    _failed(result, IssueKind.PATH_MISSING)
    # The package makes the link absolute; either way the target is named as resolved.
    dangling = result.evidence["dangling"]
    assert dangling.startswith("/etc/nginx/sites-enabled/default -> "), dangling
    assert dangling.endswith("(/etc/nginx/sites-available/default does not exist)"), dangling


def test_a_data_directory_taken_from_its_user_is_not_writable(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, ssh):
        ssh.check(["chown", "root:root", "--", DATA])
        ssh.check(["chmod", "0755", "--", DATA])
        result = detector.run_probe(f"writable:{DATA}")
    _failed(result, IssueKind.PERMISSIONS)
    assert (result.evidence["mode"], result.evidence["owner"]) == ("0755", "root:root")
    assert result.evidence["remedy"] == f"chown sampleapp:sampleapp {DATA}"


def test_a_config_file_made_world_writable_differs_from_what_its_package_ships(
        app: App, fresh: str) -> None:
    """No baseline: nginx-common's .deb in the patient's apt cache says 0644 root:root."""
    with on(app, fresh) as (detector, ssh):
        ssh.check(["chown", "www-data", "--", "/etc/nginx/nginx.conf"])
        ssh.check(["chmod", "0666", "--", "/etc/nginx/nginx.conf"])
        result = detector.run_probe("pkgmeta:nginx")
    _failed(result, IssueKind.PERMISSIONS)
    assert result.evidence["changed"].startswith("/etc/nginx/nginx.conf: mode 0666 www-data:root, "
                                                 "package nginx-common "), result.evidence
    assert result.evidence["changed"].splitlines()[0].endswith(" ships 0644 root:root"), result.evidence


def test_a_deleted_packaged_file_breaks_the_package(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, ssh):
        path = _packaged_regular_file(ssh, "nginx-common")
        ssh.check(["rm", "--", path])
        result = detector.run_probe("dpkg:nginx")
    _failed(result, IssueKind.PACKAGE_BROKEN)
    assert f"{path} (missing)" in result.evidence["broken_files"]
    assert "apt-get install --reinstall nginx-common" in result.evidence["remedy"]


def test_a_deleted_conffile_breaks_the_package_but_an_edited_one_does_not(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, ssh):
        conffiles = _conffiles(ssh, "nginx-common")
        ssh.check(["sh", "-c", "echo '# an admin was here' >> /etc/nginx/nginx.conf"])
        edited = detector.run_probe("dpkg:nginx")
        path = next((p for p in UNUSED_CONFFILES if p in conffiles), None)
        assert path is not None, f"none of {UNUSED_CONFFILES} is a conffile of nginx-common: {conffiles}"
        ssh.check(["rm", "--", path])
        result = detector.run_probe("dpkg:nginx")
    assert edited.ok, edited
    assert "/etc/nginx/nginx.conf (changed, conffile)" in edited.evidence["edited_conffiles"]
    _failed(result, IssueKind.PACKAGE_BROKEN)
    assert f"{path} (missing, conffile)" in result.evidence["broken_files"]
    assert "--force-confmiss" in result.evidence["remedy"]


def test_a_stopped_nginx_no_longer_listens_on_port_80(app: App, fresh: str) -> None:
    with on(app, fresh) as (detector, ssh):
        ssh.check(["systemctl", "stop", "--", "nginx.service"], timeout=120)
        result = detector.run_probe("port:nginx:80")
    _failed(result, IssueKind.PORT_DOWN)
    assert result.evidence["source"] == "ss -H -ltn"


LOOPER = "vmrepair-looper.service"
LOOPER_UNIT = (b"[Unit]\nDescription=vmrepair test: fails on purpose, restarted every second\n"
               b"StartLimitIntervalSec=0\n[Service]\nExecStart=/bin/false\nRestart=on-failure\nRestartSec=1\n")


@pytest.mark.nightly   # about a minute of guest time; make test is near its 45-minute budget
def test_a_unit_that_keeps_failing_is_counted_in_the_journals_window(app: App, fresh: str) -> None:
    """The restart-loop window read from systemd's own journal entries (one journalctl for the round)."""
    looper = Component("looper", units=(LOOPER,))
    with app.vms.transport(fresh) as ssh:
        ssh.check(["sh", "-c", 'cat > "$1"', "sh", f"/etc/systemd/system/{LOOPER}"], stdin=LOOPER_UNIT)
        ssh.check(["systemctl", "daemon-reload"], timeout=120)
        ssh.check(["systemctl", "start", "--no-block", "--", LOOPER], timeout=120)
        ssh.check(["sleep", "12"], timeout=60)   # about five turns at RestartSec=1 under TCG
        agent = RemoteAgent(ssh)
        try:
            (result,) = Detector(WatchConfig((looper,), mounts=()), ssh, agent).run_components(["looper"])
        finally:
            agent.close()
    assert result.probe == f"unit:{LOOPER}" and not result.ok, result
    assert int(result.evidence["loop_turns"]) >= 3, result.evidence
    assert int(result.evidence["loop_failures"]) >= 3, result.evidence
    assert result.evidence["loop_window"] == "10 min"
    assert "exit-code" in result.evidence.get("loop_results", ""), result.evidence


def _unit_props(ssh: Transport) -> dict[str, str]:
    return dict(show_unit(ssh, MERGE_UNIT).properties)


def _wait_for(ssh: Transport, what: str, ready: Callable[[dict[str, str]], bool], *,
              timeout_s: float = 60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        props = _unit_props(ssh)
        if ready(props):
            return props
        assert time.monotonic() < deadline, f"{MERGE_UNIT}: not {what} within {timeout_s:g} s: {props}"
        time.sleep(0.2)


def test_a_running_unit_that_counts_automatic_restarts_is_reset_without_being_touched(
        app: App, fresh: str) -> None:
    """The systemd fact :mod:`orchestrator.systemd.counter` stands on: a running unit that still counts
    automatic restarts (here: one systemd itself brought back after a loop) gets ``NRestarts=0`` from the
    counter's ``reset-failed`` and keeps running the same process; the unit probe calls it flapping
    before and passes it after. The interleaving that leaves a repaired unit so (a restart merged into
    systemd's own start job, queued but not yet run) is one turn of PID 1's event loop: not reproduced."""
    with app.vms.transport(fresh) as ssh:
        _counter_reset(app, ssh)


def _counter_reset(app: App, ssh: Transport) -> None:
    thresholds = app.settings.watch.thresholds
    component = Component("merge", units=(MERGE_UNIT,))

    def verdict() -> ProbeResult:
        loops = read_loops(ssh, [MERGE_UNIT], thresholds.restart_loop_minutes)
        return evaluate(component, MERGE_UNIT, show_unit(ssh, MERGE_UNIT), thresholds, loops=loops)

    # A service that fails until MERGE_FIXED exists, restarted by systemd every second.
    ssh.check(["systemd-run", f"--unit={MERGE_UNIT}", "-p", "Restart=on-failure", "-p", "RestartSec=1",
               "-p", "StartLimitIntervalSec=0",
               "--", "/bin/sh", "-c", f"test -e {MERGE_FIXED} && exec sleep 3600"], timeout=60)
    try:
        # A loop the probe counts (restart_loop_failures in the window).
        _wait_for(ssh, "looping", lambda p: int(p.get("NRestarts", "0")) >= thresholds.restart_loop_failures,
                  timeout_s=120)
        ssh.check(["touch", MERGE_FIXED])
        # systemd's next automatic restart brings it back: running, and counting that restart.
        back = _wait_for(ssh, "running again", lambda p: p.get("SubState") == "running")
        assert int(back["NRestarts"]) > thresholds.restart_loop_failures - 1, back
        before = verdict()
        assert not before.ok and "flapping" in before.summary, before.summary
        pid = _main_pid(ssh)

        assert own_the_start(quiet_runner(ssh, 30), MERGE_UNIT)
        after = _unit_props(ssh)
        assert (after["ActiveState"], after["SubState"], after["NRestarts"]) == ("active", "running", "0")
        assert _main_pid(ssh) == pid, "the reset restarted the unit"
        now = verdict()
        assert now.ok, now.summary
        assert not own_the_start(quiet_runner(ssh, 30), MERGE_UNIT)   # nothing left to reset
    finally:
        ssh.run(["systemctl", "stop", "--", MERGE_UNIT], timeout=60)
        ssh.run(["systemctl", "reset-failed", "--", MERGE_UNIT], timeout=60)
        ssh.run(["rm", "-f", MERGE_FIXED], timeout=60)


def _main_pid(ssh: Transport) -> str:
    argv = ["systemctl", "show", "--property=MainPID", "--value", "--", MERGE_UNIT]
    return ssh.check(argv).stdout_text.strip()
