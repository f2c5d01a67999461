"""A troubleshooting VM on a hypervisor reached as ``qemu+ssh://`` (issue 15): this machine's own
libvirtd, through an sshd the test starts on a loopback port with its own host key, client key and
known_hosts. Root's ~/.ssh is never read or written: libvirt opens the hypervisor with the libssh
transport and the test's keyfile/known_hosts (orchestrator.hypervisor.remote), and vmrepair reaches the
guest through that sshd as a jump host.

Reuses from tests/integration: the ``app`` fixture (conftest.py: skips without root, QEMU, libvirtd or
the built template), ``booted_patient`` and ``fresh_patient`` and ``unique_name`` (helpers.py), and the
fault injection / `run` pipeline call of test_repair_faults.py (``inject`` + ``run_repair``).

Written for the integrator to run; it was not run where it was written (another person's VMs).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.demo.faults import inject
from orchestrator.hypervisor.site import overlay_volume
from orchestrator.hypervisor.sync import MANIFEST
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from tests.integration.helpers import booted_patient, fresh_patient, unique_name

pytestmark = pytest.mark.integration
HV = "loop"
HEALTHY = "healthy"
SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class LoopbackSshd:
    port: int
    client_key: Path
    known_hosts: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True)
    return Path(f"{path}.pub").read_text().strip()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited {proc.returncode}: {log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {deadline_s} s")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """A private sshd on 127.0.0.1:<free port>; killed at teardown."""
    for binary in ("ssh-keygen", "virsh"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    if not SSHD.exists():
        pytest.skip(f"{SSHD} is not installed (apt-get install openssh-server)")
    if shutil.which("virt-ssh-helper") is None and shutil.which("nc") is None:
        pytest.skip("neither virt-ssh-helper nor nc is installed: libvirt's ssh transport needs one")
    tmp = tmp_path_factory.mktemp("sshd")
    tmp.chmod(0o700)
    host_key, client_key = tmp / "host_ed25519", tmp / "client_ed25519"
    host_public = _keygen(host_key, "vmrepair-test-hypervisor")
    client_public = _keygen(client_key, "vmrepair-test-orchestrator")
    authorized = tmp / "authorized_keys"
    authorized.write_text(client_public + "\n")
    authorized.chmod(0o600)
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        # The files live under /tmp (world-writable and sticky), which StrictModes would refuse;
        # the directory itself is root-only.
        "StrictModes no", "AllowTcpForwarding yes", f"PidFile {tmp / 'sshd.pid'}",
        "Subsystem sftp internal-sftp", "",
    ]))
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    # Its log goes to a file: a pipe nobody reads would fill up and block sshd mid-test.
    log = tmp / "sshd.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=sink)
    try:
        _wait_listening(port, proc, log)
        yield LoopbackSshd(port, client_key, known_hosts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The "remote" image_dir (this machine here); the pool over it is removed afterwards."""
    path = tmp_path_factory.mktemp("remote") / "images"
    yield path
    subprocess.run(["virsh", "-c", "qemu:///system", "pool-destroy", f"vmrepair-{HV}"],
                   capture_output=True, check=False)
    subprocess.run(["virsh", "-c", "qemu:///system", "pool-undefine", f"vmrepair-{HV}"],
                   capture_output=True, check=False)


@pytest.fixture(scope="module")
def remote_app(app: App, sshd: LoopbackSshd, image_dir: Path) -> Iterator[App]:
    """The same settings as ``app`` with one hypervisor: this machine through qemu+ssh://."""
    hv = HypervisorSettings.model_validate({
        "name": HV, "uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/system",
        "ssh": {"host": "127.0.0.1", "port": sshd.port, "user": "root",
                "identity_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts)},
        "image_dir": str(image_dir), "max_vms": 4,
    })
    application = App(dataclasses.replace(app.settings, hypervisors=(hv,)))
    try:
        application.hypervisor_conn(HV).version()  # through libssh, pinned by our known_hosts
        yield application
    finally:
        application.close()


# Nightly: a measurement (three VM starts) more than a check; make test's repair through the same
# hypervisor starts a remote troubleshooting VM, syncs to it and reaches it through the jump host.
@pytest.mark.nightly
def test_readiness_through_qemu_ssh_vs_local(app: App, remote_app: App, image_dir: Path) -> None:
    """(a) Time to a usable troubleshooting VM, local vs remote (first remote start includes the sync)."""
    timings: dict[str, float] = {}
    remote = remote_app.vms_on(HV)
    for label, vms in (("local", app.vms), ("remote-first", remote), ("remote-synced", remote)):
        name = unique_name("rdy")
        began = time.monotonic()
        result = vms.up(name, ephemeral=True)
        try:
            with vms.transport(name) as ssh:
                assert ssh.check(["true"]).succeeded
            timings[label] = time.monotonic() - began
            print(f"{label}: ready in {timings[label]:.1f} s (boot to SSH {result.boot_seconds:.1f} s,"
                  f" warm={result.is_warm})")
        finally:
            vms.destroy(name)
        if label != "local":
            assert not (image_dir / overlay_volume(name)).exists()
    complete = json.loads((image_dir / MANIFEST).read_text())["complete"]
    assert any(v.endswith(".qcow2") for v in complete)
    assert any(v.endswith(".kernel") for v in complete)
    print(json.dumps({k: round(v, 2) for k, v in timings.items()}))


@pytest.fixture(scope="module")
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "rpatient", HEALTHY)


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(app, patient, HEALTHY)


def test_a_fault_is_repaired_with_the_troubleshooting_vm_on_the_remote_hypervisor(
    app: App, remote_app: App, fresh: str, image_dir: Path,
) -> None:
    """(b) The patient stays local; `run` places its troubleshooting VM on the qemu+ssh:// hypervisor."""
    with app.vms.transport(fresh) as ssh:
        inject(ssh, "nginx-config", "directive")
        assert not ssh.run(["nginx", "-t"]).succeeded
    outcome = run_repair(remote_app, f"vm:{fresh}", RunOptions(assume_yes=True, stable_period_s=5.0))
    data = outcome.as_dict()
    assert data["status"] == SessionStatus.REPAIRED, json.dumps(data, indent=1, default=str)
    assert outcome.exit_code == 0
    with app.vms.transport(fresh) as ssh:
        assert ssh.run(["nginx", "-t"]).succeeded
        assert ssh.run(["systemctl", "is-active", "nginx"]).stdout_text.strip() == "active"
    # The troubleshooting VM ran over there: its session says so, and nothing of it is left.
    session = app.settings.sessions_dir / str(data["session"])
    placed = [json.loads(line) for p in session.rglob("*.jsonl")
              for line in p.read_text().splitlines() if '"placed"' in line]
    assert any(e.get("hypervisor") == HV for e in placed), placed
    assert not [p.name for p in image_dir.glob("vm-*.qcow2")]
    assert remote_app.vms_on(HV).list() == []
    assert image_dir.stat().st_mode & 0o077 == 0
