"""Domain XML from typed objects, checked against a golden file; instance metadata round trips."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.hypervisor.domain_xml import (
    QEMU_NS,
    VMREPAIR_NS,
    DirectKernelBoot,
    DiskSpec,
    DomainSpec,
    InstanceMetadata,
    UserNetSpec,
)

GOLDEN = Path(__file__).parent / "golden" / "domain.xml"
VM_DIR = Path("/var/lib/vmrepair/vms/web1")
IMAGE_DIR = Path("/var/lib/vmrepair/images/debian-12")

METADATA = InstanceMetadata(
    name="web1", template="debian-12", ssh_port=40022, vm_dir=str(VM_DIR), ephemeral=True,
    owner_pid=4242, created_at="2026-01-01T00:00:00+00:00",
)


def _spec(**overrides: object) -> DomainSpec:
    values: dict[str, object] = {
        "name": "vmrepair-web1", "domain_type": "qemu", "memory_mib": 1024, "vcpus": 2,
        "boot": DirectKernelBoot(IMAGE_DIR / "vmlinuz", IMAGE_DIR / "initrd.img",
                                 "root=/dev/vda rw console=ttyS0"),
        "disk": DiskSpec(VM_DIR / "disk.qcow2"), "net": UserNetSpec(40022),
        "serial_log": VM_DIR / "serial.log", "metadata": METADATA,
    }
    values.update(overrides)
    return DomainSpec(**values)  # type: ignore[arg-type]


def _attr(root: ET.Element, path: str, name: str) -> str | None:
    element = root.find(path)
    assert element is not None, path
    return element.get(name)


def test_domain_xml_matches_golden_file() -> None:
    xml = _spec().to_xml()
    if os.environ.get("VMREPAIR_REGEN_GOLDEN") == "1":  # after a deliberate change, then review
        GOLDEN.write_text(xml + "\n")
    assert xml + "\n" == GOLDEN.read_text()


def test_network_is_restricted_user_net_with_loopback_ssh_forward() -> None:
    root = ET.fromstring(_spec().to_xml())  # noqa: S314 - our own output
    args = [el.get("value") for el in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args == [
        "-netdev", "user,id=vmrnet0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22",
        "-device", "virtio-net-pci,netdev=vmrnet0,bus=pci.0,addr=0x10",
    ]
    assert root.find("devices/interface") is None  # no libvirt-managed NIC


def test_direct_kernel_boot_disk_serial_and_seclabel() -> None:
    root = ET.fromstring(_spec().to_xml())  # noqa: S314 - our own output
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "vmrepair-web1"
    assert root.findtext("os/kernel") == str(IMAGE_DIR / "vmlinuz")
    assert root.findtext("os/initrd") == str(IMAGE_DIR / "initrd.img")
    assert root.findtext("os/cmdline") == "root=/dev/vda rw console=ttyS0"
    assert _attr(root, "devices/disk/source", "file") == str(VM_DIR / "disk.qcow2")
    assert _attr(root, "devices/disk/driver", "type") == "qcow2"
    assert _attr(root, "devices/serial", "type") == "file"
    assert _attr(root, "devices/serial/source", "path") == str(VM_DIR / "serial.log")
    seclabel = root.find("seclabel")
    assert seclabel is not None
    assert (seclabel.get("type"), seclabel.get("model"), seclabel.get("relabel")) == (
        "static", "dac", "no")
    assert seclabel.findtext("label") == "+0:+0"


def test_extra_qemu_args_follow_the_network() -> None:
    root = ET.fromstring(_spec(extra_qemu_args=["-S"]).to_xml())  # noqa: S314
    args = [el.get("value") for el in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args[-1] == "-S"
    assert len(args) == 5


def test_text_is_escaped() -> None:
    xml = _spec(boot=DirectKernelBoot(Path("/k"), Path("/i"), "a=<b> & c")).to_xml()
    assert ET.fromstring(xml).findtext("os/cmdline") == "a=<b> & c"  # noqa: S314


def test_metadata_round_trip_through_domain_xml() -> None:
    assert InstanceMetadata.from_xml(_spec().to_xml()) == METADATA


def test_metadata_round_trip_through_its_element() -> None:
    text = ET.tostring(METADATA.to_element(), encoding="unicode")
    assert f'xmlns:vmrepair="{VMREPAIR_NS}"' in text
    assert InstanceMetadata.from_xml(text) == METADATA


def test_metadata_with_namespace_stripped() -> None:
    # libvirt's metadata API hands the element back without our namespace.
    text = ET.tostring(METADATA.to_element(), encoding="unicode")
    stripped = re.sub(r"\s+xmlns:vmrepair=\"[^\"]+\"", "", text).replace("vmrepair:", "")
    assert "xmlns" not in stripped
    assert "vmrepair:" not in stripped
    assert InstanceMetadata.from_xml(stripped) == METADATA


def test_metadata_defaults_when_optional_fields_are_absent() -> None:
    text = ("<instance><name>a</name><template>t</template><ssh-port>1</ssh-port>"
            "<vm-dir>/d</vm-dir></instance>")
    assert InstanceMetadata.from_xml(text) == InstanceMetadata("a", "t", 1, "/d")


@pytest.mark.parametrize("text", [
    "not xml at all <",
    "<domain><name>x</name></domain>",
    "<instance><name>a</name></instance>",
    "<instance><name>a</name><template>t</template><ssh-port>many</ssh-port>"
    "<vm-dir>/d</vm-dir></instance>",
])
def test_foreign_or_broken_metadata_is_none(text: str) -> None:
    assert InstanceMetadata.from_xml(text) is None
