"""Warm starts of vmrepair's VMs: restore one from a saved, booted state (falling back to a cold boot
when that is not possible), and freeze a booted VM into such a state.

:mod:`~orchestrator.hypervisor.warm` holds the state itself (its files, and the rewrite of its saved
domain XML); this module holds the VM lifecycle steps around it, which
:class:`~orchestrator.hypervisor.vm.VmManager` calls (``up(warm=True)``, ``prepare_warm``, ``freeze``).
They are separate from the manager because they are a path of their own beside the cold boot, with
their own fallbacks; they reach the manager only through :class:`WarmHost`, so this module does not
import it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from orchestrator.config.settings import Settings
from orchestrator.errors import HypervisorError, VmRepairError
from orchestrator.fsutil import ensure_private_dir
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor.accel import detect_accel
from orchestrator.hypervisor.boot import wait_for_ssh
from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection
from orchestrator.hypervisor.disks import create_overlay
from orchestrator.hypervisor.domain_xml import InstanceMetadata
from orchestrator.hypervisor.ports import free_loopback_port
from orchestrator.hypervisor.vmtypes import SshFactory, UpResult
from orchestrator.hypervisor.warm import (
    WarmState,
    load_warm_state,
    publish_warm_state,
    rewrite_saved_xml,
    warm_vm_name,
)
from orchestrator.imaging.store import BuiltImage, ImageStore
from orchestrator.systemd import is_system_running_argv
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


class WarmHost(Protocol):
    """What warm starts need of the VM manager (:class:`~orchestrator.hypervisor.vm.VmManager`):
    its collaborators, and its own steps to boot, reach, find and remove a VM."""

    settings: Settings
    conn: LibvirtConnection
    runner: Transport
    ssh: SshFactory
    images: ImageStore

    def vm_dir(self, name: str) -> Path: ...

    def transport(self, name: str, *, connect_timeout: float | None = None) -> Transport: ...

    def up(self, name: str, template: str | None = None, *, ephemeral: bool = False,
           warm: bool = False, disk_cache: str = "writeback") -> UpResult: ...

    def _own_domain(self, name: str) -> DomainHandle | None: ...

    def _require_domain(self, name: str) -> DomainHandle: ...

    def _remove(self, name: str, vm_dir: Path) -> None: ...


def try_warm(vms: WarmHost, name: str, template: str, image: BuiltImage, layer: WarmState | None, *,
              ephemeral: bool, deadline: float) -> UpResult | str:
    """Restore ``name`` from its warm state (``layer``, else the template's); or why a cold boot must be
    done instead. A failed restore leaves no VM behind.

    Raises: whatever is not a HypervisorError (an interrupt, an SSH error setting the clock)."""
    state = layer or load_warm_state(image.directory, image.manifest.recipe_hash)
    if state is None:
        return "no warm state for this image build (`vmrepair image warm` creates it)"
    if state.vm_name != name:
        return f"the warm state can only be restored as VM {state.vm_name!r}"
    try:
        return up_warm(vms, name, template, image, state, ephemeral=ephemeral, deadline=deadline)
    except HypervisorError as exc:  # includes BootError
        log.warning("warm start of %s failed (%s); cold booting", name, exc.message)
        vms._remove(name, vms.vm_dir(name))
        return exc.message
    except BaseException:
        # The guest restored but did not answer (its clock could not be set, or we were
        # interrupted): never leave a half-started VM behind, and keep the first error.
        with contextlib.suppress(VmRepairError, OSError):
            vms._remove(name, vms.vm_dir(name))
        raise


def up_warm(
    vms: WarmHost, name: str, template: str, image: BuiltImage, state: WarmState, *, ephemeral: bool,
    deadline: float,
) -> UpResult:
    """Clone ``state``'s disk, restore its memory under ``name`` and set the guest's clock.

    Raises: HypervisorError (BootError: SSH did not answer), TransportError."""
    began = time.monotonic()
    vm_dir = ensure_private_dir(vms.vm_dir(name))
    create_overlay(vms.runner, state.disk, vm_dir / inst.OVERLAY)
    port = free_loopback_port()
    created = now_timestamp()
    record = inst.InstanceRecord(
        name=name, template=template, recipe_hash=image.manifest.recipe_hash, ssh_port=port,
        host_key=image.manifest.host_key, created_at=created, ephemeral=ephemeral,
        owner_pid=os.getpid() if ephemeral else 0,
    )
    record.save(vm_dir)
    metadata = InstanceMetadata(name=name, template=template, ssh_port=port, vm_dir=str(vm_dir),
                                ephemeral=ephemeral, owner_pid=record.owner_pid, created_at=created)
    xml = rewrite_saved_xml(
        vms.conn.saved_state_xml(state.state), disk=vm_dir / inst.OVERLAY,
        serial_log=vm_dir / inst.SERIAL_LOG, ssh_port=port,
        metadata=metadata,
    )
    dom = vms.conn.restore_state(state.state, xml, inst.domain_name(name))
    # Persistent like every other vmrepair domain (snapshots, list, destroy work the same way).
    dom = vms.conn.define(dom.xml(), dom.name)
    wait_for_ssh(dom, lambda: vms.ssh(record, 2.0), serial_log=vm_dir / inst.SERIAL_LOG,
                 deadline_s=min(deadline, 60.0))
    with vms.ssh(record, 5.0) as ssh:
        # The guest woke up with the clock of the moment it was saved.
        ssh.check(["date", "-u", "-s", f"@{int(time.time())}"], timeout=30)
    seconds = time.monotonic() - began
    log.info("VM %s restored warm in %.1f s", name, seconds)
    return UpResult(name, port, seconds, detect_accel(vms.settings.vm.accel).accel, is_warm=True)


def prepare_warm(vms: WarmHost, template: str | None = None) -> WarmState:
    """:meth:`VmManager.prepare_warm <orchestrator.hypervisor.vm.VmManager.prepare_warm>`."""
    template = template or vms.settings.default_template
    image = vms.images.require(template)
    existing = load_warm_state(image.directory, image.manifest.recipe_hash)
    if existing is not None:
        return existing
    return freeze(vms, warm_vm_name(template), template, image.directory)


def freeze(vms: WarmHost, name: str, template: str, into: Path,
           prepare: Callable[[Transport], None] | None = None, *, warm: bool = False) -> WarmState:
    """:meth:`VmManager.freeze <orchestrator.hypervisor.vm.VmManager.freeze>`."""
    image = vms.images.require(template)
    vm_dir = vms.vm_dir(name)
    if vm_dir.exists() or vms._own_domain(name) is not None:
        vms._remove(name, vm_dir)
    # A warm start (when the template's state may be restored under this name) only saves the
    # boot; the layer's disk then stacks on the template's warm disk, which is frozen too.
    # Ephemeral: should this process die mid-way, the reaper removes the VM.
    # Disk flushes ignored: the guest syncs once before the freeze, and the files are fsynced
    # before the record that makes them count is written.
    vms.up(name, template, warm=warm, ephemeral=True, disk_cache="unsafe")
    try:
        with vms.transport(name) as ssh:
            # Only a guest whose boot finished cleanly is worth freezing.
            ssh.check(is_system_running_argv(wait=True), timeout=300)
            if prepare is not None:
                prepare(ssh)
            ssh.check(["sync"], timeout=60)
        saved = vm_dir / "state.sav.partial"
        vms._require_domain(name).save_state(saved)
        return publish_warm_state(into, image.manifest.recipe_hash, name, vm_dir / inst.OVERLAY, saved)
    finally:
        vms._remove(name, vm_dir)
