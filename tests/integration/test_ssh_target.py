"""`ssh://` targets for real: a patient VM reached as an ssh:// host (not `vm:`), its host key pinned in
a known_hosts file, logged into as a non-root user with NOPASSWD sudo, named by a `~/.ssh/config`
alias, directly and through a ProxyJump hop; an unpinned host is refused before anything runs.

The ssh:// address is the VM's loopback port forward (127.0.0.1:PORT, the network rule of this
workplace). The jump goes through that same guest: its sshd opens a direct-tcpip channel to its own
127.0.0.1:22, so the second hop never leaves the guest.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.settings import TargetSettings
from orchestrator.demo.faults import inject
from orchestrator.errors import HostKeyError
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.targets.spec import open_target, parse_target
from tests.integration.helpers import booted_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
LOGIN = "vmrepair-ops"
STABLE_S = 5.0


@pytest.fixture(scope="module")
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "sshpatient", HEALTHY)


@dataclasses.dataclass(frozen=True)
class Reach:
    app: App
    port: int
    aliases: tuple[str, ...]


def _sudo_user(app: App, patient: str) -> None:
    """A login user with the orchestrator's public key and passwordless sudo (the documented setup)."""
    public = app.settings.client_key.with_name(app.settings.client_key.name + ".pub").read_bytes()
    with app.vms.transport(patient) as ssh:
        ssh.check(["useradd", "--create-home", "--shell", "/bin/bash", LOGIN])
        ssh.check(["install", "-d", "-m", "0700", "-o", LOGIN, "-g", LOGIN, f"/home/{LOGIN}/.ssh"])
        ssh.check(["tee", f"/home/{LOGIN}/.ssh/authorized_keys"], stdin=public)
        ssh.check(["chown", f"{LOGIN}:{LOGIN}", f"/home/{LOGIN}/.ssh/authorized_keys"])
        sudoers = f"{LOGIN} ALL=(root) NOPASSWD: ALL\n".encode()
        ssh.check(["tee", "/etc/sudoers.d/vmrepair-ops"], stdin=sudoers)
        ssh.check(["chmod", "0440", "/etc/sudoers.d/vmrepair-ops"])
        ssh.check(["visudo", "-cf", "/etc/sudoers.d/vmrepair-ops"])


@pytest.fixture(scope="module")
def reach(app: App, patient: str, tmp_path_factory: pytest.TempPathFactory) -> Reach:
    _sudo_user(app, patient)
    app.vms.snapshot(patient, "with-login")
    record = app.vms.record(patient)
    work = tmp_path_factory.mktemp("ssh")
    known_hosts = work / "known_hosts"
    # The forwarded port, and the guest's own port 22 as the jump host's direct-tcpip sees it.
    known_hosts.write_text(f"[127.0.0.1]:{record.ssh_port} {record.host_key}\n127.0.0.1 {record.host_key}\n")
    config = work / "ssh_config"
    key = app.settings.client_key
    config.write_text(
        f"Host patient-direct\n  HostName 127.0.0.1\n  Port {record.ssh_port}\n  User {LOGIN}\n"
        f"  IdentityFile {key}\n\n"
        f"Host patient-jump\n  HostName 127.0.0.1\n  Port 22\n  User {LOGIN}\n  IdentityFile {key}\n"
        f"  ProxyJump {LOGIN}@127.0.0.1:{record.ssh_port}\n")
    targets = TargetSettings(known_hosts=known_hosts, ssh_key=key, ssh_config=config)
    return Reach(App(dataclasses.replace(app.settings, targets=targets)), record.ssh_port,
                 ("patient-direct", "patient-jump"))


@pytest.fixture
def fresh(app: App, patient: str, reach: Reach) -> Iterator[Reach]:
    app.vms.revert(patient, "with-login")
    for alias in reach.aliases:   # baselines and learned outcomes are kept per target
        shutil.rmtree(reach.app.settings.baselines_dir / parse_target(f"ssh://{alias}").slug,
                      ignore_errors=True)
    yield reach
    leftovers = [vm.name for vm in app.vms.list() if vm.name.startswith(("trb-", "lyr-"))]
    assert leftovers == [], f"troubleshooting VMs left behind: {leftovers}"


def test_a_patient_reached_as_ssh_with_sudo_is_repaired(app: App, patient: str, fresh: Reach) -> None:
    with app.vms.transport(patient) as ssh:
        inject(ssh, "nginx-config", "directive")
        assert not ssh.run(["nginx", "-t"]).succeeded
    outcome = run_repair(fresh.app, "ssh://patient-direct",
                         RunOptions(assume_yes=True, stable_period_s=STABLE_S))
    text = json.dumps(outcome.as_dict(), indent=1, default=str)
    assert outcome.status == SessionStatus.REPAIRED and outcome.exit_code == 0, text
    with app.vms.transport(patient) as ssh:
        assert ssh.run(["nginx", "-t"]).succeeded
        assert ssh.run(["systemctl", "is-active", "nginx"]).stdout_text.strip() == "active"
        code = ssh.check(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/"])
        assert code.stdout_text == "200"
        # Everything ran as the login user through sudo: its sudo use is in the guest's journal.
        journal = ssh.check(["journalctl", "-q", "--no-pager", "_COMM=sudo"]).stdout_text
    assert f"{LOGIN} : " in journal and "COMMAND=" in journal, journal[-2000:]


def test_ssh_config_alias_through_a_proxyjump_hop(fresh: Reach) -> None:
    spec = parse_target("ssh://patient-jump")
    assert str(spec) == "ssh://patient-jump"
    with open_target(fresh.app, spec) as transport:
        # A command as root through sudo, a file up and down through the root-safe path.
        assert transport.check(["id", "-u"]).stdout_text.strip() == "0"
        transport.check(["mkdir", "-p", "/etc/vmrepair-test"])
        local = fresh.app.settings.state_dir / "ssh-jump-probe.txt"
        local.write_text("through the jump\n")
        try:
            transport.put_file(local, "/etc/vmrepair-test/probe.txt", mode=0o640)
            stat = transport.check(["stat", "-c", "%U %a", "/etc/vmrepair-test/probe.txt"]).stdout_text
            assert stat.split() == ["root", "640"]
            back = local.with_name("ssh-jump-back.txt")
            transport.get_file("/etc/vmrepair-test/probe.txt", back)
            assert back.read_text() == "through the jump\n"
            back.unlink()
        finally:
            local.unlink()
    options = RunOptions(assume_yes=True, stable_period_s=STABLE_S)
    outcome = run_repair(fresh.app, "ssh://patient-jump", options)
    assert outcome.status == SessionStatus.HEALTHY, json.dumps(outcome.as_dict(), indent=1, default=str)


def test_an_unpinned_host_is_refused_before_anything_runs(fresh: Reach, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    targets = fresh.app.settings.targets.model_copy(update={"known_hosts": empty})
    stranger = App(dataclasses.replace(fresh.app.settings, targets=targets))
    spec = parse_target("ssh://patient-direct")
    with pytest.raises(HostKeyError), open_target(stranger, spec) as transport:
        transport.check(["true"])
