"""Helpers shared by the integration tests."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Generator, Iterator

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.detect import Detector
from orchestrator.discover.resolve import Resolution, resolve_for
from orchestrator.targets.spec import parse_target
from orchestrator.transport.base import Transport


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def domain_exists(name: str) -> bool:
    """Ask libvirt through virsh, independently of the code under test."""
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return f"vmrepair-{name}" in out


def remove_baseline(app: App, name: str) -> None:
    """Forget the baseline recorded for VM ``name``, if any."""
    shutil.rmtree(app.settings.baselines_dir / parse_target(f"vm:{name}").slug, ignore_errors=True)


def booted_patient(
    app: App, prefix: str, snapshot: str, template: str | None = None
) -> Generator[str, None, None]:
    """For a fixture to ``yield from``: a new patient VM from ``template`` (default: the config's),
    fully booted and saved as ``snapshot``; destroyed with its baseline afterwards."""
    name = unique_name(prefix)
    app.vms.up(name, template)
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
        app.vms.snapshot(name, snapshot)
        yield name
    finally:
        app.vms.destroy(name)
        remove_baseline(app, name)


def lent_patient(name: str) -> Iterator[str]:
    """For a module fixture to ``yield from``: the shared patient ``name`` for this module's tests,
    paused once the module is done, so that an idle guest does not take CPU from the next modules
    under TCG. The next module's ``fresh_patient`` reverts it to its snapshot, taken while it ran,
    which leaves it running again."""
    yield name
    subprocess.run(["virsh", "-c", "qemu:///system", "suspend", f"vmrepair-{name}"],
                   capture_output=True, text=True, check=False, timeout=60)


def fresh_patient(app: App, name: str, snapshot: str) -> Iterator[str]:
    """For a fixture to ``yield from``: patient ``name`` back at ``snapshot`` without a baseline; after
    the test, no troubleshooting VM may be left behind."""
    app.vms.revert(name, snapshot)
    remove_baseline(app, name)
    yield name
    leftovers = [vm.name for vm in app.vms.list() if vm.name.startswith(("trb-", "lyr-"))]
    assert leftovers == [], f"troubleshooting VMs left behind: {leftovers}"


def detect(app: App, name: str, ssh: Transport) -> tuple[Resolution, list[dict[str, object]]]:
    """Resolve what ``name`` runs (discovery, through the state's cache) and detect its issues."""
    agent = RemoteAgent(ssh)
    try:
        resolution = resolve_for(app.settings, app.state, parse_target(f"vm:{name}").slug, ssh, agent)
        report = Detector(resolution.watch, ssh, agent).run()
    finally:
        agent.cleanup()
    return resolution, [i.as_dict() for i in report.issues]
