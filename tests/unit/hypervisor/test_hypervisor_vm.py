"""VmManager on libvirt's test:///default driver, a fake built image and fake transports."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config.settings import Settings, VmSettings
from orchestrator.errors import (
    BootError,
    ConfigError,
    ConnectError,
    HypervisorError,
    ImageNotBuiltError,
    StaleVmError,
    VmExistsError,
    VmNotFoundError,
)
from orchestrator.fsutil import ensure_private_dir
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor import warmstart
from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection
from orchestrator.hypervisor.vm import VmManager
from orchestrator.hypervisor.warm import WarmState
from orchestrator.imaging.store import BuiltImage
from orchestrator.retry import vm_stop_policy
from orchestrator.transport.base import Transport
from orchestrator.transport.fake import FakeTransport

FOREIGN_XML = """<domain type='test'>
  <name>vmrepair-foo</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


def _qemu_img(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    if argv[:2] == ("qemu-img", "create"):
        Path(argv[-1]).write_bytes(b"QFI\xfb overlay")
        return 0, b"", b""
    return 127, b"", b"unexpected command\n"


class SshFactory:
    """Builds the FakeTransport the manager talks to a VM through; records what it was asked."""

    def __init__(self, handler: Callable[..., tuple[int, bytes, bytes]] | None = None) -> None:
        self.handler = handler or (lambda argv, stdin: (0, b"", b""))
        self.requests: list[tuple[inst.InstanceRecord, float]] = []

    def __call__(self, record: inst.InstanceRecord, connect_timeout: float) -> Transport:
        self.requests.append((record, connect_timeout))
        return FakeTransport(self.handler, host=f"root@127.0.0.1:{record.ssh_port}")


@pytest.fixture
def vm_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(vm=VmSettings(accel="tcg", boot_timeout_s=5))


@pytest.fixture
def image(vm_settings: Settings, make_built_image: Callable[..., BuiltImage]) -> BuiltImage:
    return make_built_image(vm_settings.image_store)


@pytest.fixture
def ssh() -> SshFactory:
    return SshFactory()


@pytest.fixture
def runner() -> FakeTransport:
    return FakeTransport(_qemu_img, host="local")


@pytest.fixture
def manager(
    vm_settings: Settings, libvirt_conn: LibvirtConnection, image: BuiltImage,
    runner: FakeTransport, ssh: SshFactory,
) -> VmManager:
    return VmManager(vm_settings, libvirt_conn, runner, ssh)


def test_up_clones_defines_starts_and_waits_for_ssh(
    manager: VmManager, image: BuiltImage, runner: FakeTransport, ssh: SshFactory,
) -> None:
    result = manager.up("web1")

    assert (result.name, result.accel) == ("web1", "tcg")
    vm_dir = manager.vm_dir("web1")
    overlay = vm_dir / inst.OVERLAY
    assert runner.argvs == [("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                             "-b", str(image.base_disk), str(overlay))]
    assert overlay.stat().st_mode & 0o777 == 0o600
    assert vm_dir.stat().st_mode & 0o777 == 0o700

    record = inst.InstanceRecord.load(vm_dir)
    assert (record.template, record.ssh_port, record.ephemeral) == ("debian-12", result.ssh_port,
                                                                     False)
    assert record.host_key == image.manifest.host_key
    assert ssh.requests[0][0] == record

    dom = manager.conn.lookup("vmrepair-web1")
    assert dom is not None
    assert dom.is_active()
    root = ET.fromstring(dom.xml())  # noqa: S314 - from the test driver
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == str(image.kernel)
    assert root.findtext("os/cmdline") == image.manifest.kernel_cmdline
    meta = dom.metadata()
    assert meta is not None
    assert (meta.name, meta.ssh_port, meta.vm_dir) == ("web1", result.ssh_port, str(vm_dir))


def test_up_appends_extra_kernel_arguments(manager: VmManager, image: BuiltImage) -> None:
    manager.up("web1", cmdline_extra="systemd.unit=rescue.target")
    dom = manager.conn.lookup("vmrepair-web1")
    assert dom is not None
    cmdline = ET.fromstring(dom.xml()).findtext("os/cmdline")  # noqa: S314
    assert cmdline == f"{image.manifest.kernel_cmdline} systemd.unit=rescue.target"


def test_list_snapshot_revert_destroy(manager: VmManager) -> None:
    result = manager.up("web1")
    (info,) = manager.list()
    assert (info.name, info.state, info.template, info.ssh_port) == (
        "web1", "running", "debian-12", result.ssh_port)
    assert not info.is_stale
    assert not info.ephemeral

    manager.snapshot("web1", "clean", "before the fault")
    manager.snapshot("web1", "broken")
    assert sorted(s.name for s in manager.snapshots("web1")) == ["broken", "clean"]
    manager.revert("web1", "clean")
    assert [s.name for s in manager.snapshots("web1") if s.is_current] == ["clean"]
    manager.delete_snapshot("web1", "broken")
    assert [s.name for s in manager.snapshots("web1")] == ["clean"]

    manager.destroy("web1")
    assert manager.list() == []
    assert not manager.vm_dir("web1").exists()
    assert manager.conn.lookup("vmrepair-web1") is None


def test_snapshot_names_are_validated(manager: VmManager) -> None:
    manager.up("web1")
    with pytest.raises(ConfigError, match="invalid snapshot name 'a b'"):
        manager.snapshot("web1", "a b")


def test_snapshot_of_unknown_vm(manager: VmManager) -> None:
    with pytest.raises(VmNotFoundError) as info:
        manager.snapshot("ghost", "clean")
    assert info.value.message == "no VM named 'ghost'"
    assert info.value.remedy == "`vmrepair vm list` shows the VMs"


def test_up_twice_is_refused(manager: VmManager) -> None:
    manager.up("web1")
    with pytest.raises(VmExistsError) as info:
        manager.up("web1")
    assert info.value.message == "VM 'web1' already exists"
    assert info.value.remedy == "use it, or `vmrepair vm destroy web1` first"
    assert len(manager.list()) == 1


def test_invalid_name_is_refused_before_anything_happens(
    manager: VmManager, runner: FakeTransport
) -> None:
    with pytest.raises(ConfigError, match="invalid VM name 'Bad_Name'"):
        manager.up("Bad_Name")
    assert runner.calls == []


def test_leftover_directory_blocks_up_and_destroy_cleans_it(manager: VmManager) -> None:
    vm_dir = manager.vm_dir("web1")
    vm_dir.mkdir(parents=True)
    (vm_dir / inst.OVERLAY).write_bytes(b"half an overlay")

    with pytest.raises(StaleVmError) as info:
        manager.up("web1")
    assert info.value.message == f"leftovers of VM 'web1' from a crashed run are in {vm_dir}"
    assert info.value.remedy is not None
    assert "`vmrepair vm destroy web1`" in info.value.remedy
    assert (vm_dir / inst.OVERLAY).exists()  # up never deletes what it did not create

    (stale,) = manager.list()
    assert (stale.name, stale.state, stale.template, stale.is_stale) == (
        "web1", "no domain", "?", True)

    manager.destroy("web1")
    assert not vm_dir.exists()
    manager.up("web1")


def test_destroy_of_a_transient_domain_a_killed_warm_start_left(manager: VmManager) -> None:
    """A warm start restores a transient domain, then defines it; a run SIGKILLed in between leaves
    a transient one, which stopping removes: destroy must not then fail to undefine it."""
    manager.up("web1")
    dom = manager.conn.lookup("vmrepair-web1")
    assert dom is not None
    xml = dom.xml()
    dom.force_stop()
    dom.undefine()
    manager.conn.conn.createXML(xml, 0)   # running, never defined: what the restore leaves
    manager.destroy("web1")
    assert manager.conn.lookup("vmrepair-web1") is None
    assert not manager.vm_dir("web1").exists()


def test_destroy_when_the_domain_vanishes_while_it_is_stopped(manager: VmManager,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirt abandons a restore whose client died: the transient domain can disappear between the
    lookup and the stop. Nothing is left to stop, nothing is retried, and the directory still goes."""
    manager.up("web1")
    calls: list[str] = []

    def vanish(self: DomainHandle) -> None:
        calls.append(self.name)
        handle = manager.conn.lookup(self.name)
        assert handle is not None
        handle._dom.destroy()
        handle._dom.undefine()
        raise VmNotFoundError("query state: Domain not found", domain=self.name)

    monkeypatch.setattr(DomainHandle, "force_stop", vanish)
    manager.destroy("web1")
    assert calls == ["vmrepair-web1"]   # not retried: a domain that is gone is not busy
    assert manager.conn.lookup("vmrepair-web1") is None
    assert not manager.vm_dir("web1").exists()


def test_destroy_of_unknown_vm(manager: VmManager) -> None:
    with pytest.raises(VmNotFoundError, match="no VM named 'ghost'"):
        manager.destroy("ghost")


def test_foreign_domain_with_our_prefix_is_never_touched(manager: VmManager) -> None:
    manager.conn.define(FOREIGN_XML, "vmrepair-foo")

    for action in (lambda: manager.up("foo"), lambda: manager.destroy("foo"),
                   lambda: manager.snapshot("foo", "s")):
        with pytest.raises(HypervisorError) as info:
            action()
        assert info.value.message == (
            "domain vmrepair-foo exists but was not created by vmrepair; not touching it"
        )
        assert info.value.remedy == "choose another VM name"

    assert manager.list() == []
    assert manager.reap() == []
    assert manager.conn.lookup("vmrepair-foo") is not None
    assert not manager.vm_dir("foo").exists()


def test_reap_never_touches_a_foreign_domain_beside_a_leftover_directory(
    manager: VmManager,
) -> None:
    manager.conn.define(FOREIGN_XML, "vmrepair-foo")
    manager.vm_dir("foo").mkdir(parents=True)
    with contextlib.suppress(HypervisorError):  # refusing loudly or skipping are both safe
        manager.reap()
    dom = manager.conn.lookup("vmrepair-foo")
    assert dom is not None
    assert dom.metadata() is None


def test_reap_removes_only_leftovers(manager: VmManager, dead_pid: int) -> None:
    manager.up("keep")
    manager.up("live", ephemeral=True)  # its owner (this process) is alive
    manager.up("orphan", ephemeral=True)
    orphan_dir = manager.vm_dir("orphan")
    record = inst.InstanceRecord.load(orphan_dir)
    assert record.owner_pid == os.getpid()
    dataclasses.replace(record, owner_pid=dead_pid).save(orphan_dir)
    manager.up("nodir")
    shutil.rmtree(manager.vm_dir("nodir"))  # domain without its directory
    stale_dir = manager.vm_dir("stale")
    stale_dir.mkdir()  # directory without a domain

    assert manager.reap() == ["nodir", "orphan", "stale"]

    assert [vm.name for vm in manager.list()] == ["keep", "live"]
    for name in ("nodir", "orphan", "stale"):
        assert manager.conn.lookup(f"vmrepair-{name}") is None
        assert not manager.vm_dir(name).exists()
    assert manager.reap() == []


def test_a_run_reaps_only_orphans_and_leaves_a_directory_being_created(
    manager: VmManager, dead_pid: int,
) -> None:
    """``orphans_only`` is what a starting run uses: another run's VM whose directory exists but whose
    domain is not defined yet (the middle of its ``up``) looks stale and must stay."""
    manager.up("orphan", ephemeral=True)
    orphan_dir = manager.vm_dir("orphan")
    dataclasses.replace(inst.InstanceRecord.load(orphan_dir), owner_pid=dead_pid).save(orphan_dir)
    manager.up("starting", ephemeral=True)
    manager.conn.lookup("vmrepair-starting").undefine()   # dir and record written, domain not yet

    assert manager.reap(orphans_only=True) == ["orphan"]

    assert [vm.name for vm in manager.list()] == ["starting"]
    assert manager.vm_dir("starting").exists()


def test_a_stop_libvirt_reports_busy_is_asked_again(manager: VmManager,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load libvirt can report "Failed to terminate process ... Device or resource busy" while
    QEMU is still exiting; the VM is removed once a later stop succeeds."""
    manager.up("busy", ephemeral=True)
    sleeps: list[float] = []
    monkeypatch.setattr("orchestrator.hypervisor.vm.vm_stop_policy",
                        lambda: vm_stop_policy(sleep=sleeps.append))
    dom_class = type(manager._require_domain("busy"))
    real_stop = dom_class.force_stop
    calls: list[str] = []

    def flaky(self: object) -> None:
        calls.append("stop")
        if len(calls) == 1:
            raise HypervisorError("stop: Failed to terminate process 4242 with SIGKILL: "
                                  "Device or resource busy")
        real_stop(self)   # type: ignore[arg-type]

    monkeypatch.setattr(dom_class, "force_stop", flaky)
    manager.destroy("busy")

    assert calls == ["stop", "stop"] and sleeps == [2.0]
    assert manager.list() == []


def test_a_warm_start_that_fails_outside_the_hypervisor_leaves_no_vm(
    manager: VmManager, image: BuiltImage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The restored guest did not take its clock (an SSH error, not a hypervisor one): the error is
    raised as it is, and the half-started VM is gone."""
    state = WarmState(tmp_path, image.manifest.recipe_hash, "trb-debian-12")

    def restored_then_lost(_vms: object, name: str, *_args: object, **_kwargs: object) -> None:
        ensure_private_dir(manager.vm_dir(name))
        raise ConnectError("the guest closed the connection")

    monkeypatch.setattr(warmstart, "up_warm", restored_then_lost)
    with pytest.raises(ConnectError):
        manager.up("trb-debian-12", warm=True, layer=state, ephemeral=True)
    assert not manager.vm_dir("trb-debian-12").exists()
    assert manager.list() == []


def test_boot_failure_keeps_the_serial_log_and_removes_the_vm(
    vm_settings: Settings, libvirt_conn: LibvirtConnection, image: BuiltImage,
    runner: FakeTransport,
) -> None:
    def refused(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("Connection refused")

    manager = VmManager(vm_settings, libvirt_conn, runner, SshFactory(refused))
    with pytest.raises(BootError) as info:
        manager.up("web1", boot_timeout=1e-9)

    kept = Path(info.value.serial_log or "")
    assert kept.parent == vm_settings.state_dir / "logs"
    assert kept.name.startswith("web1-boot-failure-")
    assert kept.is_file()
    assert info.value.message.endswith("; VM 'web1' was destroyed")
    assert "did not answer SSH" in info.value.message
    assert info.value.remedy == f"serial console log kept at {kept}"
    assert libvirt_conn.lookup("vmrepair-web1") is None
    assert not manager.vm_dir("web1").exists()
    assert manager.list() == []


def test_boot_failure_copies_what_the_guest_wrote(
    vm_settings: Settings, libvirt_conn: LibvirtConnection, image: BuiltImage,
    runner: FakeTransport,
) -> None:
    def console_then_refuse(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        # The test driver runs no guest; write its console output as QEMU would.
        log = vm_settings.vms_dir / "web1" / inst.SERIAL_LOG
        log.write_bytes(b"Kernel panic - not syncing: Attempted to kill init!\n")
        raise ConnectError("Connection refused")

    manager = VmManager(vm_settings, libvirt_conn, runner, SshFactory(console_then_refuse))
    with pytest.raises(BootError, match="console shows 'Kernel panic - not syncing'") as info:
        manager.up("web1", boot_timeout=60)
    assert Path(info.value.serial_log or "").read_bytes().startswith(b"Kernel panic")


def test_unbuilt_template_leaves_nothing_behind(
    vm_settings: Settings, libvirt_conn: LibvirtConnection, runner: FakeTransport,
) -> None:
    manager = VmManager(vm_settings, libvirt_conn, runner, SshFactory())
    with pytest.raises(ImageNotBuiltError) as info:
        manager.up("web1")
    assert info.value.remedy is not None
    assert "vmrepair image build debian-12" in info.value.remedy
    assert not manager.vm_dir("web1").exists()
    assert runner.calls == []


def test_overlay_failure_removes_the_vm_directory(
    vm_settings: Settings, libvirt_conn: LibvirtConnection, image: BuiltImage,
) -> None:
    runner = FakeTransport(lambda argv, stdin: (1, b"", b"qemu-img: disk full\n"))
    manager = VmManager(vm_settings, libvirt_conn, runner, SshFactory())
    with pytest.raises(HypervisorError, match="qemu-img: disk full"):
        manager.up("web1")
    assert not manager.vm_dir("web1").exists()
    assert libvirt_conn.lookup("vmrepair-web1") is None


def test_transport_uses_the_record_and_connect_timeout(
    manager: VmManager, ssh: SshFactory, vm_settings: Settings,
) -> None:
    result = manager.up("web1")
    with manager.transport("web1") as transport:
        assert transport.host == f"root@127.0.0.1:{result.ssh_port}"
    record, timeout = ssh.requests[-1]
    assert record.name == "web1"
    assert timeout == vm_settings.ssh.connect_timeout_s
    manager.transport("web1", connect_timeout=1.5)
    assert ssh.requests[-1][1] == 1.5


def test_transport_to_unknown_vm(manager: VmManager) -> None:
    with pytest.raises(VmNotFoundError) as info:
        manager.transport("ghost")
    assert info.value.remedy == "`vmrepair vm list` shows the VMs"
