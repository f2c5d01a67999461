"""VM lifecycle: up (linked clone → define → start → SSH), snapshots, destroy, list, reap.

Every domain vmrepair creates is named ``vmrepair-<name>`` and carries an :class:`InstanceMetadata`
element; nothing without that element is ever stopped, undefined or deleted. Warm starts (restore
instead of boot, and the freezing of a booted VM) are :mod:`~orchestrator.hypervisor.warmstart`'s; the
values the manager takes and returns are in :mod:`~orchestrator.hypervisor.vmtypes`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.boot.host import RebootResult, reboot_host
from orchestrator.config.settings import Settings
from orchestrator.errors import (
    BootError,
    HypervisorError,
    StaleVmError,
    VmExistsError,
    VmNotFoundError,
)
from orchestrator.fsutil import ensure_private_dir, pid_alive
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor import warmstart
from orchestrator.hypervisor.accel import detect_accel
from orchestrator.hypervisor.boot import console_watch, wait_for_ssh
from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection, SnapshotInfo
from orchestrator.hypervisor.domain_xml import (
    DirectKernelBoot,
    DiskSpec,
    DomainSpec,
    InstanceMetadata,
    UserNetSpec,
)
from orchestrator.hypervisor.site import LocalSite, VmSite
from orchestrator.hypervisor.vmtypes import NO_DOMAIN, SshFactory, UpResult, VmInfo
from orchestrator.hypervisor.warm import WarmState
from orchestrator.imaging.store import ImageStore
from orchestrator.retry import vm_start_policy, vm_stop_policy
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport

__all__ = ["SshFactory", "UpResult", "VmInfo", "VmManager"]  # callers import the values from here too

log = logging.getLogger(__name__)


class VmManager:
    """Creates and manages vmrepair's VMs.

    Raises (from its methods): VmExistsError, VmNotFoundError, StaleVmError, BootError,
    SnapshotError, HypervisorError, ImageNotBuiltError, ConfigError (bad names).
    """

    def __init__(
        self, settings: Settings, conn: LibvirtConnection, runner: Transport, ssh: SshFactory,
        site: VmSite | None = None,
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.runner = runner
        self.ssh = ssh
        self.images = ImageStore(settings.image_store)
        #: Where disks, boot files and forwarded ports are: this machine unless told otherwise.
        self.site: VmSite = site or LocalSite(runner)

    # -- paths / records -------------------------------------------------------------------------
    def vm_dir(self, name: str) -> Path:
        return self.settings.vms_dir / inst.validate_vm_name(name)

    def record(self, name: str) -> inst.InstanceRecord:
        vm_dir = self.vm_dir(name)
        if not vm_dir.is_dir():
            raise VmNotFoundError(f"no VM named {name!r}", domain=inst.domain_name(name),
                                  remedy="`vmrepair vm list` shows the VMs")
        return inst.InstanceRecord.load(vm_dir)

    def transport(self, name: str, *, connect_timeout: float | None = None) -> Transport:
        record = self.record(name)
        return self.ssh(record, connect_timeout or self.settings.ssh.connect_timeout_s)

    def _own_domain(self, name: str) -> DomainHandle | None:
        """The domain of VM ``name`` if it exists *and* carries our metadata.

        Raises:
            HypervisorError: a domain of that name exists but is not vmrepair's.
        """
        dom = self.conn.lookup(inst.domain_name(name))
        if dom is None:
            return None
        if dom.metadata() is None:
            raise HypervisorError(
                f"domain {dom.name} exists but was not created by vmrepair; not touching it",
                domain=dom.name, remedy="choose another VM name",
            )
        return dom

    # -- lifecycle ---------------------------------------------------------------------------------
    def up(
        self,
        name: str,
        template: str | None = None,
        *,
        ephemeral: bool = False,
        boot_timeout: float | None = None,
        cmdline_extra: str = "",
        warm: bool = False,
        layer: WarmState | None = None,
        disk_cache: str = "writeback",
    ) -> UpResult:
        """Clone and boot (or, with ``warm``, restore a saved booted state and fall back to a cold boot
        when that is not possible); returns when SSH answers.

        With ``layer`` (a host layer's frozen disk and memory state over ``template``) the clone is a
        linked clone of the layer instead of the template base, restored from the layer's state."""
        template = template or self.settings.default_template
        vm_dir = self.vm_dir(name)
        if self._own_domain(name) is not None:
            raise VmExistsError(f"VM {name!r} already exists", domain=inst.domain_name(name),
                                remedy=f"use it, or `vmrepair vm destroy {name}` first")
        if vm_dir.exists():
            raise StaleVmError(
                f"leftovers of VM {name!r} from a crashed run are in {vm_dir}",
                domain=inst.domain_name(name),
                remedy=f"`vmrepair vm destroy {name}` (or `vmrepair vm reap`) removes them",
            )
        image = self.images.require(template)
        accel = detect_accel(self.settings.vm.accel)
        ensure_private_dir(self.settings.vms_dir)
        fallback = ""
        if warm and not self.site.supports_warm:
            fallback = f"no warm starts on hypervisor {self.site.name} (its VMs cold boot)"
        elif warm and not cmdline_extra:
            warm_up = warmstart.try_warm(self, name, template, image, layer, ephemeral=ephemeral,
                                         deadline=boot_timeout or self.settings.vm.boot_timeout_s)
            if isinstance(warm_up, UpResult):
                return warm_up
            fallback = warm_up
        ensure_private_dir(vm_dir)
        created = now_timestamp()
        try:
            if self.site.name:
                # The remote disk outlives a crash of this process: record whose it is first, so
                # this hypervisor's manager (not the local one) reaps the directory and the volume.
                inst.InstanceRecord(
                    name=name, template=template, recipe_hash=image.manifest.recipe_hash, ssh_port=0,
                    host_key=image.manifest.host_key, created_at=created, ephemeral=ephemeral,
                    owner_pid=os.getpid() if ephemeral else 0, hypervisor=self.site.name,
                ).save(vm_dir)
            # A layer's disk was frozen while its guest ran (after a sync): a cold boot from it is a
            # boot after a clean crash, which ext4's journal replays.
            disk = self.site.prepare_disk(name, layer.disk if layer else image.base_disk, vm_dir, image)
            kernel, initrd = self.site.boot_files(image)
            serial_log = self.site.serial_log(name, vm_dir)

            def define_and_start() -> tuple[DomainHandle, inst.InstanceRecord]:
                port = self.site.free_port()
                record = inst.InstanceRecord(
                    name=name, template=template, recipe_hash=image.manifest.recipe_hash,
                    ssh_port=port, host_key=image.manifest.host_key, created_at=created,
                    ephemeral=ephemeral, owner_pid=os.getpid() if ephemeral else 0,
                    hypervisor=self.site.name,
                )
                record.save(vm_dir)  # intent first: a crash after this leaves a reapable dir
                spec = DomainSpec(
                    name=inst.domain_name(name), domain_type=accel.domain_type,
                    memory_mib=image.manifest.memory_mib, vcpus=image.manifest.vcpus,
                    boot=DirectKernelBoot(
                        kernel, initrd, f"{image.manifest.kernel_cmdline} {cmdline_extra}".strip(),
                    ),
                    disk=DiskSpec(disk, cache=disk_cache),
                    net=UserNetSpec(port),
                    serial_log=serial_log,
                    metadata=InstanceMetadata(
                        name=name, template=template, ssh_port=port, vm_dir=str(vm_dir),
                        ephemeral=ephemeral, owner_pid=record.owner_pid, created_at=created,
                    ),
                )
                dom = self.conn.define(spec.to_xml(), spec.name)
                try:
                    dom.start()
                except HypervisorError:
                    dom.undefine()  # lost the port race (or worse): retry from a clean slate
                    raise
                return dom, record

            dom, record = vm_start_policy()(define_and_start)
            # A remote serial log cannot be read here: serial_tail finds nothing, so only the
            # deadline and the domain's state end a failed remote boot.
            seconds = wait_for_ssh(
                dom, lambda: self.ssh(record, 2.0), serial_log=serial_log,
                deadline_s=boot_timeout or self.settings.vm.boot_timeout_s,
            )
        except BootError as exc:
            kept = self._keep_serial_log(name, serial_log)
            self._remove(name, vm_dir)
            raise BootError(
                f"{exc.message}; VM {name!r} was destroyed", domain=exc.domain,
                serial_log=str(kept), remedy=f"serial console log kept at {kept}",
            ) from exc
        except BaseException:
            self._remove(name, vm_dir)
            raise
        log.info("VM %s up in %.1f s (%s, %s)", name, seconds, accel.accel, accel.reason)
        return UpResult(name, record.ssh_port, seconds, accel.accel, warm_fallback=fallback)

    # -- warm starts (orchestrator.hypervisor.warmstart) -------------------------------------------
    def prepare_warm(self, template: str | None = None) -> WarmState:
        """Boot the template once, save its memory state and keep it for warm starts (idempotent)."""
        return warmstart.prepare_warm(self, template)

    def freeze(self, name: str, template: str, into: Path,
               prepare: Callable[[Transport], None] | None = None, *, warm: bool = False) -> WarmState:
        """Boot VM ``name`` from ``template``, let ``prepare`` change it (a host layer installs packages),
        then save its disk and memory state as a warm state in ``into``. Clones restored from it must
        be named ``name``. The VM is always removed.

        Raises: BootError, HypervisorError, and whatever ``prepare`` raises.
        """
        return warmstart.freeze(self, name, template, into, prepare, warm=warm)

    def destroy(self, name: str) -> None:
        """Stop, undefine and delete the overlay; also cleans leftovers of a crashed run.

        Raises:
            VmNotFoundError: there is neither a domain nor a directory of that name.
        """
        vm_dir = self.vm_dir(name)
        if self._own_domain(name) is None and not vm_dir.exists():
            raise VmNotFoundError(f"no VM named {name!r}", domain=inst.domain_name(name))
        self._remove(name, vm_dir)

    def _remove(self, name: str, vm_dir: Path) -> None:
        dom = self._own_domain(name)
        if dom is not None:
            # A warm start restores a transient domain and defines it afterwards. One killed in
            # between (a SIGKILLed run) leaves a transient domain: gone once stopped, or gone on its
            # own while we look at it (libvirt abandons the restore its client dropped). Either way
            # there is nothing left to stop or undefine; the directory below still goes.
            with contextlib.suppress(VmNotFoundError):
                vm_stop_policy()(dom.force_stop)
                if self._own_domain(name) is not None:
                    dom.undefine()
        self.site.remove_disk(name)
        if vm_dir.exists():
            if vm_dir.parent != self.settings.vms_dir or vm_dir.is_symlink():
                raise HypervisorError(f"refusing to delete unexpected path {vm_dir}")
            shutil.rmtree(vm_dir)

    def _keep_serial_log(self, name: str, serial_log: Path) -> Path:
        logs = ensure_private_dir(self.settings.state_dir / "logs")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())  # UTC like every other name stamp
        kept = logs / f"{name}-boot-failure-{stamp}.serial.log"
        if self.site.name:
            kept.write_text(f"(the serial console log is on hypervisor {self.site.name}: {serial_log})\n")
        elif serial_log.exists():
            shutil.copyfile(serial_log, kept)
        else:
            kept.write_text("(the guest wrote nothing to its serial console)\n")
        return kept

    # -- snapshots -------------------------------------------------------------------------------
    def _require_domain(self, name: str) -> DomainHandle:
        dom = self._own_domain(name)
        if dom is None:
            raise VmNotFoundError(f"no VM named {name!r}", domain=inst.domain_name(name),
                                  remedy="`vmrepair vm list` shows the VMs")
        return dom

    def reboot(self, name: str, *, deadline_s: float | None = None) -> RebootResult:
        """Reboot the guest from inside (``systemctl reboot``) and wait for its new boot.

        Raises:
            RebootError: it did not come back (the console's emergency/panic markers end the wait early).
            VmNotFoundError: no such VM.
        """
        record = self.record(name)
        dom = self._require_domain(name)
        return reboot_host(lambda: self.ssh(record, 3.0),
                           deadline_s=deadline_s or self.settings.vm.boot_timeout_s,
                           fail_fast=console_watch(dom, self.vm_dir(name) / inst.SERIAL_LOG))

    def snapshot(self, name: str, snap: str, description: str = "") -> None:
        self._require_domain(name).snapshot_create(inst.validate_snapshot_name(snap), description)

    def revert(self, name: str, snap: str) -> None:
        self._require_domain(name).snapshot_revert(inst.validate_snapshot_name(snap))

    def delete_snapshot(self, name: str, snap: str) -> None:
        self._require_domain(name).snapshot_delete(inst.validate_snapshot_name(snap))

    def snapshots(self, name: str) -> list[SnapshotInfo]:
        return self._require_domain(name).snapshots()

    # -- inventory -------------------------------------------------------------------------------
    def _lists(self, vm_dir: Path) -> bool:
        """Whether this manager lists the domain whose record would be in ``vm_dir``: a domain recorded
        for another hypervisor is that one's (two entries may even name the same libvirtd). A remote
        manager lists only domains recorded here: a shared hypervisor runs other orchestrators' VMs,
        which are not ours to call stale or reap."""
        try:
            rec = inst.InstanceRecord.load(vm_dir)
        except HypervisorError:
            return not self.site.name
        return rec.hypervisor == self.site.name

    def list(self) -> list[VmInfo]:
        found: dict[str, VmInfo] = {}
        for dom in self.conn.domains():
            meta = dom.metadata()
            if meta is None or dom.name != inst.domain_name(meta.name):
                continue
            vm_dir = self.settings.vms_dir / meta.name
            if not self._lists(vm_dir):
                continue
            found[meta.name] = VmInfo(
                meta.name, dom.state_name(), meta.template, meta.ssh_port, meta.ephemeral,
                is_stale=not (vm_dir / inst.RECORD).exists(), vm_dir=vm_dir,
            )
        if self.settings.vms_dir.is_dir():
            for vm_dir in sorted(self.settings.vms_dir.iterdir()):
                if vm_dir.name in found or not vm_dir.is_dir():
                    continue
                try:
                    rec = inst.InstanceRecord.load(vm_dir)
                    template, port, eph = rec.template, rec.ssh_port, rec.ephemeral
                except HypervisorError:
                    template, port, eph, rec = "?", 0, False, None
                if rec is not None and rec.hypervisor != self.site.name:
                    continue  # another hypervisor's VM: its manager lists (and reaps) it
                found[vm_dir.name] = VmInfo(vm_dir.name, NO_DOMAIN, template, port, eph,
                                            is_stale=True, vm_dir=vm_dir)
        return sorted(found.values(), key=lambda v: v.name)

    def reap(self, *, orphans_only: bool = False) -> builtins.list[str]:
        """Remove vmrepair's own leftovers: stale directories, domains without a directory, and
        ephemeral VMs whose owning process is gone. User-created VMs that are healthy stay.

        ``orphans_only`` keeps the stale ones whose owner may still be alive: a run starting next to
        another one must not take the directory that run's ``up`` has created but not yet defined."""
        removed = []
        for vm in self.list():
            is_orphan = vm.ephemeral and not _owner_alive(vm.vm_dir)
            if is_orphan or (vm.is_stale and not orphans_only):
                log.warning("reaping leftover VM %s (%s)", vm.name, "stale" if vm.is_stale else "orphan")
                self._remove(vm.name, vm.vm_dir)
                removed.append(vm.name)
        return removed


def _owner_alive(vm_dir: Path) -> bool:
    try:
        pid = inst.InstanceRecord.load(vm_dir).owner_pid
    except HypervisorError:
        return False
    return pid_alive(pid)
