"""Warm starts: the saved-XML rewrite and the warm-state record (the restore itself runs in the
integration suite, on real libvirt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import HypervisorError
from orchestrator.hypervisor.domain_xml import (
    DirectKernelBoot,
    DiskSpec,
    DomainSpec,
    InstanceMetadata,
    UserNetSpec,
)
from orchestrator.hypervisor.warm import (
    load_warm_state,
    publish_warm_state,
    rewrite_saved_xml,
    warm_vm_name,
)


def _saved_xml() -> str:
    meta = InstanceMetadata(name="trb-debian-12", template="debian-12", ssh_port=40000, vm_dir="/old")
    return DomainSpec(
        name="vmrepair-trb-debian-12", domain_type="qemu", memory_mib=1024, vcpus=2,
        boot=DirectKernelBoot(Path("/k"), Path("/i"), "root=/dev/vda"),
        disk=DiskSpec(Path("/old/disk.qcow2")),
        net=UserNetSpec(40000), serial_log=Path("/old/serial.log"), metadata=meta,
    ).to_xml()


def test_rewrite_changes_host_side_parts_only() -> None:
    meta = InstanceMetadata(name="trb-debian-12", template="debian-12", ssh_port=41234, vm_dir="/new",
                            ephemeral=True, owner_pid=7)
    out = rewrite_saved_xml(_saved_xml(), disk=Path("/new/disk.qcow2"), serial_log=Path("/new/serial.log"),
                            ssh_port=41234, metadata=meta)
    assert "<name>vmrepair-trb-debian-12</name>" in out  # libvirt refuses a renamed restore
    assert "/new/disk.qcow2" in out and "/old/disk.qcow2" not in out
    assert "/new/serial.log" in out and "/old/serial.log" not in out
    assert "hostfwd=tcp:127.0.0.1:41234-:22" in out and "40000" not in out
    assert "restrict=on" in out
    parsed = InstanceMetadata.from_xml(out)
    assert parsed == meta


def test_rewrite_refuses_xml_without_a_forwarded_port() -> None:
    xml = _saved_xml().replace("hostfwd=tcp:127.0.0.1:40000-:22", "")
    with pytest.raises(HypervisorError, match="no forwarded SSH port"):
        rewrite_saved_xml(xml, disk=Path("/d"), serial_log=Path("/s"), ssh_port=1,
                          metadata=InstanceMetadata("n", "t", 1, "/v"))


def test_warm_state_counts_only_when_complete_and_current(tmp_path: Path) -> None:
    image = tmp_path / "debian-12"
    image.mkdir()
    disk, state = tmp_path / "disk.qcow2", tmp_path / "state.sav"
    disk.write_bytes(b"qcow")
    state.write_bytes(b"state")
    assert load_warm_state(image, "h1") is None
    warm = publish_warm_state(image, "h1", warm_vm_name("debian-12"), disk, state)
    assert load_warm_state(image, "h1") == warm
    assert warm.vm_name == "trb-debian-12"
    assert (warm.disk.stat().st_mode & 0o777) == 0o444
    assert load_warm_state(image, "another-build") is None
    (warm.directory / "warm.json").write_text(json.dumps({"recipe_hash": "h1"}))  # no vm_name
    assert load_warm_state(image, "h1") is None
    (warm.directory / "warm.json").write_text("{not json")
    assert load_warm_state(image, "h1") is None
