"""A troubleshooting VM on another hypervisor, on libvirt's test:///default driver: the domain names
remote paths (pool overlay, synced kernel/initrd, serial log under image_dir/logs), the forwarded port
comes from the hypervisor, and the local manager leaves the VM to the remote one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import libvirt
import pytest

from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.config.settings import Settings, VmSettings
from orchestrator.errors import HypervisorError
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor.connection import LibvirtConnection
from orchestrator.hypervisor.pool import ImagePool
from orchestrator.hypervisor.remote import libvirt_open_uri, probe_hypervisor
from orchestrator.hypervisor.site import FREE_PORT_ARGV, RemoteSite, overlay_volume
from orchestrator.hypervisor.vm import VmManager
from orchestrator.imaging.store import BASE_DISK, INITRD, KERNEL, BuiltImage
from orchestrator.transport.base import Transport
from orchestrator.transport.fake import FakeTransport

POOL = "vmrepair-hv1"
IMAGE_DIR = PurePosixPath("/srv/vmrepair")


class StreamlessPool(ImagePool):
    """The test driver has no virStream upload/download: volumes are made empty, bytes kept here."""

    def __init__(self, conn: LibvirtConnection) -> None:
        super().__init__(conn, POOL, IMAGE_DIR)
        self.data: dict[str, bytes] = {}

    def upload(self, volume: str, local: Path) -> None:
        self.delete(volume)
        self.ensure()
        self.conn.conn.storagePoolLookupByName(POOL).createXML(
            f"<volume><name>{volume}</name><capacity unit='bytes'>{local.stat().st_size}</capacity>"
            "<target><format type='raw'/></target></volume>", 0)
        self.data[volume] = local.read_bytes()

    def read(self, volume: str, *, limit: int = 0) -> bytes | None:
        return self.data.get(volume)


@pytest.fixture
def conn(libvirt_conn: LibvirtConnection) -> Iterator[LibvirtConnection]:
    yield libvirt_conn
    try:
        pool = libvirt_conn.conn.storagePoolLookupByName(POOL)
    except libvirt.libvirtError:
        return
    for vol in pool.listAllVolumes(0):
        vol.delete(0)
    pool.destroy()
    pool.undefine()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(vm=VmSettings(accel="tcg", boot_timeout_s=5))


@pytest.fixture
def image(settings: Settings, make_built_image: Callable[..., BuiltImage]) -> BuiltImage:
    return make_built_image(settings.image_store)


def _local_qemu_img(image: BuiltImage) -> Callable[..., tuple[int, bytes, bytes]]:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:3] == ("qemu-img", "info", "--backing-chain"):
            return 0, json.dumps([{"filename": argv[-1], "virtual-size": 2 * 1024**3}]).encode(), b""
        if argv[:2] == ("qemu-img", "create"):
            Path(argv[-1]).write_bytes(b"QFI local overlay")
            return 0, b"", b""
        return 127, b"", b"unexpected\n"

    return handler


def _hypervisor_sshd(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    if argv == FREE_PORT_ARGV:
        return 0, b"40022\n", b""
    if argv[:2] == ("mkdir", "-p"):
        return 0, b"", b""
    return 127, b"", b"unexpected\n"


@pytest.fixture
def hv_sshd() -> FakeTransport:
    return FakeTransport(_hypervisor_sshd, host="root@hv1:22")


@pytest.fixture
def pool(conn: LibvirtConnection) -> StreamlessPool:
    return StreamlessPool(conn)


@pytest.fixture
def remote(settings: Settings, conn: LibvirtConnection, image: BuiltImage, pool: StreamlessPool,
           hv_sshd: FakeTransport) -> VmManager:
    runner = FakeTransport(_local_qemu_img(image), host="local")
    site = RemoteSite("hv1", pool, runner, hv_sshd)
    guest = FakeTransport(lambda argv, stdin: (0, b"", b""), host="guest")

    def ssh(record: inst.InstanceRecord, timeout: float) -> Transport:
        return guest

    return VmManager(settings, conn, runner, ssh, site)


def test_the_domain_names_remote_paths_and_the_remote_port(
    remote: VmManager, image: BuiltImage, pool: StreamlessPool, hv_sshd: FakeTransport,
) -> None:
    result = remote.up("web1", warm=True)

    assert result.ssh_port == 40022
    assert result.warm_fallback == "no warm starts on hypervisor hv1 (its VMs cold boot)"
    dom = remote.conn.lookup("vmrepair-web1")
    assert dom is not None
    root = ET.fromstring(dom.xml())  # noqa: S314 - from the test driver
    arts = image.manifest.artifacts
    assert root.findtext("os/kernel") == f"{IMAGE_DIR}/{arts[KERNEL].sha256}.kernel"
    assert root.findtext("os/initrd") == f"{IMAGE_DIR}/{arts[INITRD].sha256}.initrd"
    assert _attr(root, "devices/disk/source", "file") == f"{IMAGE_DIR}/vm-web1.qcow2"
    assert _attr(root, "devices/serial/source", "path") == f"{IMAGE_DIR}/logs/web1.serial.log"
    # (The test driver drops qemu:commandline; the hostfwd of UserNetSpec has its own golden test.)
    meta = dom.metadata()
    assert meta is not None
    assert meta.ssh_port == 40022

    # Content-addressed: the base by the manifest's sha256, plus the overlay made in the pool.
    assert set(pool.data) >= {f"{arts[BASE_DISK].sha256}.qcow2", f"{arts[KERNEL].sha256}.kernel",
                              "manifest.json"}
    vol = remote.conn.conn.storagePoolLookupByName(POOL).storageVolLookupByName("vm-web1.qcow2")
    backing = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")  # noqa: S314
    assert backing == f"{IMAGE_DIR}/{arts[BASE_DISK].sha256}.qcow2"
    assert ("mkdir", "-p", "-m", "0700", f"{IMAGE_DIR}/logs") in hv_sshd.argvs

    record = inst.InstanceRecord.load(remote.vm_dir("web1"))
    assert (record.hypervisor, record.ssh_port) == ("hv1", 40022)


def _attr(root: ET.Element, path: str, name: str) -> str | None:
    node = root.find(path)
    assert node is not None, path
    return node.get(name)


def test_a_second_vm_uploads_nothing_new(remote: VmManager, pool: StreamlessPool) -> None:
    remote.up("web1")
    before = dict(pool.data)
    remote.up("web2")
    assert pool.data == before
    assert {"vm-web1.qcow2", "vm-web2.qcow2"} <= pool.volumes()


def test_destroy_removes_the_remote_overlay(remote: VmManager, pool: StreamlessPool) -> None:
    remote.up("web1")
    remote.destroy("web1")
    assert overlay_volume("web1") not in pool.volumes()
    assert not remote.vm_dir("web1").exists()
    assert remote.conn.lookup("vmrepair-web1") is None


def test_the_local_manager_leaves_remote_records_alone(
    remote: VmManager, settings: Settings, image: BuiltImage,
) -> None:
    remote.up("web1")
    other = LibvirtConnection("test:///default")  # stands for this machine's own libvirtd
    local = VmManager(settings, other, FakeTransport(_local_qemu_img(image), host="local"),
                      lambda record, timeout: FakeTransport(lambda a, s: (0, b"", b"")))
    assert [v.name for v in remote.list()] == ["web1"]
    # Same test driver, so the domain is visible; its record says hv1, so the directory is not
    # taken for a stale local leftover.
    assert local.reap() == []
    assert remote.vm_dir("web1").exists()


def _hv(tmp_path: Path, uri: str = "qemu+ssh://root@10.0.0.5:2222/system") -> HypervisorSettings:
    key, kh = tmp_path / "k ey", tmp_path / "known_hosts"
    key.write_text("x")
    key.chmod(0o600)
    kh.write_text("x")
    return HypervisorSettings.model_validate({
        "name": "hv1", "uri": uri, "image_dir": str(IMAGE_DIR), "max_vms": 3,
        "ssh": {"host": "10.0.0.5", "port": 2222, "identity_file": str(key), "known_hosts": str(kh)}})


def test_the_uri_libvirt_opens_pins_the_host_key(tmp_path: Path) -> None:
    uri = libvirt_open_uri(_hv(tmp_path))
    assert uri == (f"qemu+libssh://root@10.0.0.5:2222/system?keyfile={tmp_path}/k%20ey"
                   f"&known_hosts={tmp_path}/known_hosts&known_hosts_verify=normal&sshauth=privkey")


def test_the_uri_defaults_user_and_port_from_ssh(tmp_path: Path) -> None:
    assert libvirt_open_uri(_hv(tmp_path, "qemu+ssh://h.example/system")).startswith(
        "qemu+libssh://root@h.example:2222/system?")


def test_probe_counts_running_vmrepair_domains(
    remote: VmManager, conn: LibvirtConnection, tmp_path: Path, pool: StreamlessPool, image: BuiltImage,
) -> None:
    remote.up("web1")
    load = probe_hypervisor(_hv(tmp_path), conn, pool=pool)
    # test:///default's own "test" domain runs too but is not vmrepair's.
    assert (load.name, load.running, load.max_vms) == ("hv1", 1, 3)
    assert image.manifest.artifacts[BASE_DISK].sha256 in load.content_ids


def test_a_bad_free_port_answer_is_refused(pool: StreamlessPool) -> None:
    sshd = FakeTransport(lambda argv, stdin: (0, b"80\n", b""), host="root@hv1:22")
    site = RemoteSite("hv1", pool, FakeTransport(lambda a, s: (127, b"", b""), host="local"), sshd)
    with pytest.raises(HypervisorError) as info:
        site.free_port()
    assert info.value.message == "hv1: the free-port probe printed '80'"


def test_a_failing_free_port_probe_names_the_hypervisor(pool: StreamlessPool) -> None:
    sshd = FakeTransport(lambda argv, stdin: (127, b"", b"python3: not found\n"), host="root@hv1:22")
    site = RemoteSite("hv1", pool, FakeTransport(lambda a, s: (127, b"", b""), host="local"), sshd)
    with pytest.raises(HypervisorError) as info:
        site.free_port()
    assert info.value.message == "hv1: python3 exited 127: python3: not found"
