"""Domain XML built from typed objects (one small class per piece, as virtinst does).

The network is QEMU user-mode networking with ``restrict=on`` (the guest reaches nothing outside) and a
``hostfwd`` from a loopback port to guest port 22, passed through libvirt's ``qemu:commandline``
namespace: this libvirt (9.0) rejects ``<interface type='user'>`` with a passt backend and port forwards.
The NIC needs an explicit PCI slot or QEMU collides with the disk's slot (shared/FIELD_NOTES.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
VMREPAIR_NS = "https://vmrepair.invalid/xmlns/instance/1"
DOMAIN_PREFIX = "vmrepair-"
#: A slot well away from what libvirt assigns automatically (disk, rng, controllers).
NIC_PCI_ADDR = "0x10"

ET.register_namespace("qemu", QEMU_NS)
ET.register_namespace("vmrepair", VMREPAIR_NS)


@dataclass(frozen=True)
class InstanceMetadata:
    """What vmrepair stamps on every domain it creates; the reaper trusts nothing without it."""

    name: str
    template: str
    ssh_port: int
    vm_dir: str
    ephemeral: bool = False
    owner_pid: int = 0
    created_at: str = ""

    def to_element(self) -> ET.Element:
        root = ET.Element(f"{{{VMREPAIR_NS}}}instance")
        for key in ("name", "template", "ssh_port", "vm_dir", "ephemeral", "owner_pid", "created_at"):
            child = ET.SubElement(root, f"{{{VMREPAIR_NS}}}{key.replace('_', '-')}")
            value = getattr(self, key)
            child.text = str(value).lower() if isinstance(value, bool) else str(value)
        return root

    @classmethod
    def from_xml(cls, text: str) -> InstanceMetadata | None:
        """Parse our element from full domain XML or from libvirt's metadata API.

        libvirt's metadata API returns the element with its namespace stripped, so tags are
        compared by local name.
        """
        try:
            root = ET.fromstring(text)  # noqa: S314 - XML from our own libvirtd, not from a guest
        except ET.ParseError:
            return None
        node = next((el for el in root.iter() if _local(el.tag) == "instance"), None)
        if node is None:
            return None
        values = {_local(child.tag): (child.text or "") for child in node}
        try:
            return cls(
                name=values["name"], template=values["template"],
                ssh_port=int(values["ssh-port"]), vm_dir=values["vm-dir"],
                ephemeral=values.get("ephemeral") == "true",
                owner_pid=int(values.get("owner-pid") or 0),
                created_at=values.get("created-at", ""),
            )
        except (KeyError, ValueError):
            return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True)
class DirectKernelBoot:
    kernel: Path
    initrd: Path
    cmdline: str


@dataclass(frozen=True)
class DiskSpec:
    path: Path
    fmt: str = "qcow2"
    target: str = "vda"
    #: ``unsafe`` ignores the guest's flushes: for VMs whose disk is thrown away or frozen after one
    #: explicit sync (image and layer builds), where dpkg's fsync per file costs minutes under TCG.
    cache: str = "writeback"


@dataclass(frozen=True)
class UserNetSpec:
    ssh_port: int
    netdev_id: str = "vmrnet0"

    def qemu_args(self) -> list[str]:
        return [
            "-netdev", f"user,id={self.netdev_id},restrict=on,"
            f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev={self.netdev_id},bus=pci.0,addr={NIC_PCI_ADDR}",
        ]


@dataclass(frozen=True)
class DomainSpec:
    name: str
    domain_type: str
    memory_mib: int
    vcpus: int
    boot: DirectKernelBoot
    disk: DiskSpec
    net: UserNetSpec
    serial_log: Path
    metadata: InstanceMetadata
    emulator: str = "/usr/bin/qemu-system-x86_64"
    machine: str = "pc"
    extra_qemu_args: list[str] = field(default_factory=list)

    def to_xml(self) -> str:
        dom = ET.Element("domain", type=self.domain_type)
        ET.SubElement(dom, "name").text = self.name
        meta = ET.SubElement(dom, "metadata")
        meta.append(self.metadata.to_element())
        ET.SubElement(dom, "memory", unit="MiB").text = str(self.memory_mib)
        ET.SubElement(dom, "vcpu").text = str(self.vcpus)
        os_el = ET.SubElement(dom, "os")
        ET.SubElement(os_el, "type", arch="x86_64", machine=self.machine).text = "hvm"
        ET.SubElement(os_el, "kernel").text = str(self.boot.kernel)
        ET.SubElement(os_el, "initrd").text = str(self.boot.initrd)
        ET.SubElement(os_el, "cmdline").text = self.boot.cmdline
        features = ET.SubElement(dom, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(dom, "clock", offset="utc")
        ET.SubElement(dom, "on_poweroff").text = "destroy"
        ET.SubElement(dom, "on_reboot").text = "restart"
        ET.SubElement(dom, "on_crash").text = "destroy"
        devices = ET.SubElement(dom, "devices")
        ET.SubElement(devices, "emulator").text = self.emulator
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=self.disk.fmt, cache=self.disk.cache)
        ET.SubElement(disk, "source", file=str(self.disk.path))
        ET.SubElement(disk, "target", dev=self.disk.target, bus="virtio")
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=str(self.serial_log), append="on")
        ET.SubElement(serial, "target", port="0")
        console = ET.SubElement(devices, "console", type="file")
        ET.SubElement(console, "source", path=str(self.serial_log), append="on")
        ET.SubElement(console, "target", type="serial", port="0")
        # The SSH server waits for the kernel RNG; virtio-rng cuts boot time (FIELD_NOTES).
        rng = ET.SubElement(devices, "rng", model="virtio")
        ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
        ET.SubElement(devices, "memballoon", model="none")
        # QEMU runs as root: the overlay and serial log live in root-only (0700) directories because
        # a clone holds copies of the host's configuration and data.
        seclabel = ET.SubElement(dom, "seclabel", type="static", model="dac", relabel="no")
        ET.SubElement(seclabel, "label").text = "+0:+0"
        cmd = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
        for arg in [*self.net.qemu_args(), *self.extra_qemu_args]:
            ET.SubElement(cmd, f"{{{QEMU_NS}}}arg", value=arg)
        ET.indent(dom)
        return ET.tostring(dom, encoding="unicode")
