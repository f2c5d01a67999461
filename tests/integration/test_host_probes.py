"""The host-wide probes on a real guest: a patient booted from the default template passes every one of
them, and faults injected by hand (a /tmp that lost its sticky bit, a world-writable /etc/sudoers, a
failed unit) fail the probe that watches them, then pass again once undone. Each case is one or two
probe runs; nothing here is nightly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport
from tests.integration.helpers import fresh_patient, lent_patient
from tests.unit.detect.fakes import HOST_PROBES  # one list of the names, for both suites

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
FAILING_UNIT = "vmrepair-it-fail"
#: What the ``target`` fixture gives a test: an SSH transport to the patient and its Detector.
Target = tuple[Transport, Detector]
CRITICAL_PERMISSIONS = (False, IssueKind.PERMISSIONS, Severity.CRITICAL)


@pytest.fixture(scope="module")
def patient(probe_patient: str) -> Iterator[str]:
    yield from lent_patient(probe_patient)   # conftest: shared by the modules that only probe


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(app, patient, HEALTHY)


@pytest.fixture
def target(app: App, fresh: str) -> Iterator[Target]:
    """An SSH transport to the fresh patient and a Detector planning only the host-wide probes (no
    component: each case stays a handful of guest commands)."""
    watch = WatchConfig((), ("/",), app.settings.watch.thresholds)
    with app.vms.transport(fresh) as ssh:
        agent = RemoteAgent(ssh)
        try:
            yield ssh, Detector(watch, ssh, agent)
        finally:
            agent.close()


def _describe(result: ProbeResult) -> str:
    return f"{result.probe}: {result.summary} {result.evidence}"


def test_a_healthy_patient_passes_every_host_probe(target: Target) -> None:
    _, detector = target
    assert detector.probe_names == ("disk:/", "inodes:/", *HOST_PROBES)
    results = detector.run_all()
    not_passing = [_describe(r) for r in results if not r.ok or r.is_unavailable]
    assert not_passing == []
    assert {r.component for r in results} == {"host"}


def test_tmp_without_its_sticky_bit_is_a_critical_permissions_fault(target: Target) -> None:
    ssh, detector = target
    ssh.check(["chmod", "0755", "/tmp"])
    try:
        result = detector.run_probe("sysdir:/tmp")
        assert (result.ok, result.kind, result.severity) == CRITICAL_PERMISSIONS, _describe(result)
        assert result.evidence["mode"] == "0755"
        assert result.evidence["remedy"] == "chown root:root /tmp && chmod 1777 /tmp"
    finally:
        ssh.check(["chmod", "1777", "/tmp"])
    assert detector.run_probe("sysdir:/tmp").ok


def test_a_world_writable_sudoers_is_a_critical_permissions_fault(target: Target) -> None:
    ssh, detector = target
    # The template has no sudo: give it the file sudo would read (the patient is reverted afterwards).
    if not ssh.run(["test", "-e", "/etc/sudoers"]).succeeded:
        ssh.check(["install", "-m", "0440", "-o", "root", "-g", "root", "/dev/null", "/etc/sudoers"])
    ssh.check(["chmod", "0440", "/etc/sudoers"])
    assert detector.run_probe("sysdir:/etc/sudoers").ok
    ssh.check(["chmod", "0666", "/etc/sudoers"])
    try:
        result = detector.run_probe("sysdir:/etc/sudoers")
        assert (result.ok, result.kind, result.severity) == CRITICAL_PERMISSIONS, _describe(result)
        assert result.evidence["problems"] == "world writable"
        assert result.evidence["mode"] == "0666"
    finally:
        ssh.check(["chmod", "0440", "/etc/sudoers"])
    assert detector.run_probe("sysdir:/etc/sudoers").ok


def _wait_until_failed(ssh: Transport, unit: str, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ssh.run(["systemctl", "is-failed", "--quiet", unit]).succeeded:
        assert time.monotonic() < deadline, f"{unit} did not fail within {timeout_s:g} s"
        time.sleep(0.5)


def test_a_failed_unit_degrades_the_system_state(target: Target) -> None:
    ssh, detector = target
    assert detector.run_probe("system:state").ok
    ssh.check(["systemd-run", f"--unit={FAILING_UNIT}", "-p", "Restart=no", "/bin/false"])
    try:
        _wait_until_failed(ssh, f"{FAILING_UNIT}.service")
        result = detector.run_probe("system:state")
        assert (result.ok, result.kind, result.severity) == (
            False, IssueKind.SYSTEM_DEGRADED, Severity.WARNING), _describe(result)
        assert result.evidence["state"] == "degraded"
        assert f"{FAILING_UNIT}.service" in result.evidence["failed_units"].splitlines()
    finally:
        ssh.check(["systemctl", "reset-failed", f"{FAILING_UNIT}.service"])
    assert detector.run_probe("system:state").ok


def test_an_oom_kill_is_seen_with_the_process_it_killed(target: Target) -> None:
    """A unit capped at 32 MiB that asks for 256: the kernel's OOM killer ends it (a cgroup OOM,
    logged like a global one), and memory:oom reports the kill from the kernel journal."""
    ssh, detector = target
    assert detector.run_probe("memory:oom").ok
    hog = "b = bytearray(256 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    ssh.run(["systemd-run", "--wait", "--unit=vmrepair-it-oom", "-p", "MemoryMax=32M",
             "-p", "MemorySwapMax=0", "/usr/bin/python3", "-c", hog], timeout=120)
    result = detector.run_probe("memory:oom")
    assert (result.ok, result.kind, result.severity) == (
        False, IssueKind.MEMORY_PRESSURE, Severity.WARNING), _describe(result)
    assert int(result.evidence["kills_in_window"]) >= 1
    assert "python3" in result.evidence["killed"]


def test_a_kernel_warning_taint_is_seen(target: Target) -> None:
    """Root may add taint flags (never clear them): W, "a kernel warning occurred", bit 9. The
    patient is reverted to its snapshot afterwards, which clears it."""
    ssh, detector = target
    assert detector.run_probe("kernel:taint").ok
    ssh.check(["sh", "-c", "echo 512 > /proc/sys/kernel/tainted"])
    result = detector.run_probe("kernel:taint")
    assert (result.ok, result.kind, result.severity) == (
        False, IssueKind.KERNEL_FAULT, Severity.WARNING), _describe(result)
    assert "W (bit 9)" in result.evidence["flags"]
