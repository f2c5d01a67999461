"""Where a VM's files and forwarded SSH port live: on this machine (:class:`LocalSite`, what vmrepair
always did) or on another hypervisor (:class:`RemoteSite`). :class:`~orchestrator.hypervisor.vm.VmManager`
does the lifecycle once and asks its site only for these few things.

A remote VM's disk is a linked clone created in the hypervisor's pool over the synced (content-addressed)
chain of its base or layer; kernel and initrd are synced too (direct kernel boot reads them on that
host). Its serial log is ``<image_dir>/logs/<name>.serial.log`` there, so the boot wait's console
fail-fast and the kept boot-failure log are not available for remote VMs (they wait for the deadline).

The forwarded port is chosen on the remote host itself: QEMU's hostfwd needs a fixed port and cannot be
asked to pick one, so the hypervisor's sshd runs a tiny bind test (an argv, never a shell string) and the
start is retried with a new port if QEMU loses the race, exactly like a local start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from orchestrator.errors import HypervisorError, TransportError
from orchestrator.hypervisor.disks import create_overlay
from orchestrator.hypervisor.instance import OVERLAY, SERIAL_LOG
from orchestrator.hypervisor.pool import ImagePool
from orchestrator.hypervisor.ports import free_loopback_port
from orchestrator.hypervisor.sync import SyncItem, backing_chain, disk_items, sync
from orchestrator.imaging.store import BASE_DISK, INITRD, KERNEL, BuiltImage
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Prints a TCP port that was free on the host's loopback a moment ago.
FREE_PORT_ARGV = (
    "python3", "-c",
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])",
)


class VmSite(Protocol):
    """Where one VM's disk, boot files, serial log and forwarded port are."""

    #: The hypervisor's name in config (empty: this machine); recorded in the VM's instance record.
    name: str
    #: Warm starts restore a local memory-state file: only the local site has them.
    supports_warm: bool

    def prepare_disk(self, vm: str, base: Path, vm_dir: Path, image: BuiltImage) -> Path:
        """Create the VM's overlay on ``base`` (a local disk: ``image``'s base or a layer over it);
        return its path on the hypervisor."""
        ...

    def boot_files(self, image: BuiltImage) -> tuple[Path, Path]:
        """Kernel and initrd paths on the hypervisor."""
        ...

    def serial_log(self, vm: str, vm_dir: Path) -> Path: ...

    def free_port(self) -> int: ...

    def remove_disk(self, vm: str) -> None:
        """Delete what :meth:`prepare_disk` made outside ``vm_dir`` (nothing, locally)."""
        ...


class LocalSite:
    name = ""
    supports_warm = True

    def __init__(self, runner: Transport) -> None:
        self.runner = runner

    def prepare_disk(self, vm: str, base: Path, vm_dir: Path, image: BuiltImage) -> Path:
        create_overlay(self.runner, base, vm_dir / OVERLAY)
        return vm_dir / OVERLAY

    def boot_files(self, image: BuiltImage) -> tuple[Path, Path]:
        return image.kernel, image.initrd

    def serial_log(self, vm: str, vm_dir: Path) -> Path:
        return vm_dir / SERIAL_LOG

    def free_port(self) -> int:
        return free_loopback_port()

    def remove_disk(self, vm: str) -> None:
        return None


class RemoteSite:
    """A hypervisor reached through libvirt (``pool``) and its sshd (``hypervisor``, a transport).

    Raises (from its methods): HypervisorError (sync, pool, or the port probe failed).
    """

    supports_warm = False

    def __init__(self, name: str, pool: ImagePool, runner: Transport, hypervisor: Transport) -> None:
        self.name, self.pool, self.runner, self.hypervisor = name, pool, runner, hypervisor

    def prepare_disk(self, vm: str, base: Path, vm_dir: Path, image: BuiltImage) -> Path:
        chain = backing_chain(self.runner, base)
        items = disk_items([d.path for d in chain], known=self._known_ids(image))
        result = sync(self.pool, items, self.runner)
        log.info("synced to %s: %d uploaded, %d already there", self.name, len(result.uploaded),
                 len(result.present))
        self._run(["mkdir", "-p", "-m", "0700", str(self.pool.directory / "logs")])
        path = self.pool.linked_clone(overlay_volume(vm), items[-1].volume, chain[-1].virtual_size)
        return Path(str(path))

    def boot_files(self, image: BuiltImage) -> tuple[Path, Path]:
        items = [self._boot_item(image, KERNEL, ".kernel"), self._boot_item(image, INITRD, ".initrd")]
        sync(self.pool, items, self.runner)
        return (Path(str(self.pool.path(items[0].volume))), Path(str(self.pool.path(items[1].volume))))

    def serial_log(self, vm: str, vm_dir: Path) -> Path:
        return Path(str(self.pool.directory / "logs" / f"{vm}.serial.log"))

    def free_port(self) -> int:
        text = self._run(list(FREE_PORT_ARGV)).strip()
        if not text.isdigit() or not 1024 <= int(text) < 65536:
            raise HypervisorError(f"{self.name}: the free-port probe printed {text[:40]!r}")
        return int(text)

    def remove_disk(self, vm: str) -> None:
        self.pool.delete(overlay_volume(vm))
        # The serial log is left: small, root-only, and the record of a failed boot.

    @staticmethod
    def _known_ids(image: BuiltImage) -> dict[Path, str]:
        # The image manifest holds the template base's sha256: no need to hash ~500 MB again.
        art = image.manifest.artifacts.get(BASE_DISK)
        return {image.base_disk: art.sha256} if art is not None else {}

    def _boot_item(self, image: BuiltImage, name: str, suffix: str) -> SyncItem:
        art = image.manifest.artifacts.get(name)
        if art is None:
            raise HypervisorError(f"image {image.directory} has no {name} in its manifest",
                                  remedy="rebuild it with `vmrepair image build --force`")
        return SyncItem(art.sha256, image.directory / name, suffix)

    def _run(self, argv: list[str]) -> str:
        try:
            result = self.hypervisor.run(argv, timeout=30)
        except TransportError as exc:
            raise HypervisorError(f"{self.name}: cannot run {argv[0]} over SSH: {exc}") from exc
        if not result.succeeded:
            raise HypervisorError(f"{self.name}: {argv[0]} exited {result.exit_status}: "
                                  f"{result.stderr_text.strip()[:200]}")
        return result.stdout_text


def overlay_volume(vm: str) -> str:
    """The pool volume of VM ``vm``'s disk (never a content id: those are 64 hex digits)."""
    return f"vm-{vm}.qcow2"
