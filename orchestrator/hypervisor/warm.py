"""Warm starts: restore a saved, fully booted guest instead of cold-booting one.

A cold boot to SSH takes 14-20 s under TCG; restoring a memory state saved with ``virDomainSave`` takes
~1.5 s (shared/FIELD_NOTES.md). Per template we keep ``<image dir>/warm/``:

- ``base.qcow2`` the disk the guest was saved with (an overlay on the template base), frozen read-only;
- ``state.sav``  the saved memory state;
- ``warm.json``  the recipe hash it belongs to, written last (a state without it is ignored).

Each restore gets its own new overlay on ``base.qcow2`` and a rewritten domain XML (disk, serial log,
forwarded port, metadata). libvirt's ABI check requires the saved domain *name and UUID* to stay
("Target domain name ... does not match source"), so the warm state is saved under the fixed VM name
:func:`warm_vm_name` and only one warm clone runs at a time: another one (or any failure) cold-boots.
The restored guest's clock is the clock of the moment it was saved, so it is set right after SSH
answers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import HypervisorError
from orchestrator.fsutil import atomic_write, ensure_private_dir
from orchestrator.hypervisor.domain_xml import QEMU_NS, VMREPAIR_NS, InstanceMetadata

log = logging.getLogger(__name__)

WARM_DIR = "warm"
STATE = "state.sav"
DISK = "base.qcow2"
RECORD = "warm.json"


def warm_vm_name(template: str) -> str:
    """The VM name warm clones of ``template`` must have (the name the state was saved under)."""
    return f"trb-{template}"[:40]


@dataclass(frozen=True)
class WarmState:
    directory: Path
    recipe_hash: str
    vm_name: str

    @property
    def state(self) -> Path:
        return self.directory / STATE

    @property
    def disk(self) -> Path:
        return self.directory / DISK


def warm_dir(image_dir: Path) -> Path:
    return image_dir / WARM_DIR


def load_warm_state(image_dir: Path, recipe_hash: str) -> WarmState | None:
    """The warm state of an image build, or None when absent, incomplete or from another build."""
    directory = warm_dir(image_dir)
    try:
        record = json.loads((directory / RECORD).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("recipe_hash") != recipe_hash:
        return None
    vm_name = record.get("vm_name")
    if not isinstance(vm_name, str):
        return None
    state = WarmState(directory, recipe_hash, vm_name)
    if not (state.state.is_file() and state.disk.is_file()):
        return None
    return state


def publish_warm_state(
    image_dir: Path, recipe_hash: str, vm_name: str, disk: Path, saved_state: Path
) -> WarmState:
    """Move a just-saved guest's overlay and state into place; the record is written last."""
    directory = ensure_private_dir(warm_dir(image_dir))
    (directory / RECORD).unlink(missing_ok=True)  # invalid until complete
    shutil.move(str(disk), directory / DISK)
    (directory / DISK).chmod(0o444)  # restored clones stack overlays on it: it must never change
    shutil.move(str(saved_state), directory / STATE)
    (directory / STATE).chmod(0o600)
    for name in (DISK, STATE):
        # Durable before the record says they are complete (the VM may have ignored its flushes).
        with (directory / name).open("rb") as handle:
            os.fsync(handle.fileno())
    record = {"recipe_hash": recipe_hash, "vm_name": vm_name}
    atomic_write(directory / RECORD, json.dumps(record).encode(), mode=0o600)
    return WarmState(directory, recipe_hash, vm_name)


def rewrite_saved_xml(
    saved_xml: str, *, disk: Path, serial_log: Path, ssh_port: int, metadata: InstanceMetadata
) -> str:
    """The saved domain XML with the host-side parts of a new clone (libvirt keeps the guest ABI).

    Raises:
        HypervisorError: the saved XML does not have the shape vmrepair wrote.
    """
    try:
        root = ET.fromstring(saved_xml)  # noqa: S314 - from our own libvirtd's save image
    except ET.ParseError as exc:
        raise HypervisorError(f"saved state has unreadable XML: {exc}") from exc
    source = root.find("./devices/disk/source")
    if source is None:
        raise HypervisorError("saved state XML has no disk source")
    source.set("file", str(disk))
    for tag in ("serial", "console"):
        for dev in root.findall(f"./devices/{tag}"):
            src = dev.find("source")
            if src is not None and dev.get("type") == "file":
                src.set("path", str(serial_log))
            log_el = dev.find("log")
            if log_el is not None:
                dev.remove(log_el)
    replaced = False
    for arg in root.iter(f"{{{QEMU_NS}}}arg"):
        value = arg.get("value", "")
        if "hostfwd=tcp:127.0.0.1:" in value:
            head, _, tail = value.partition("hostfwd=tcp:127.0.0.1:")
            arg.set("value", f"{head}hostfwd=tcp:127.0.0.1:{ssh_port}-{tail.partition('-')[2]}")
            replaced = True
    if not replaced:
        raise HypervisorError("saved state XML has no forwarded SSH port to rewrite")
    meta = root.find("metadata")
    if meta is None:
        meta = ET.SubElement(root, "metadata")
    for child in list(meta):
        if child.tag.endswith("instance") and (child.tag.startswith(f"{{{VMREPAIR_NS}}}")
                                                or child.tag == "instance"):
            meta.remove(child)
    meta.append(metadata.to_element())
    return ET.tostring(root, encoding="unicode")
