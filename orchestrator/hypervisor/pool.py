"""A libvirt storage pool of type ``dir`` at a hypervisor's ``image_dir``: the only way vmrepair puts
files on another hypervisor (``storageVolCreateXML`` + ``virStream`` upload), and the only way it makes
a troubleshooting VM's overlay there (a volume with a ``<backingStore>``: a linked clone, never a copy).

Every libvirt error is mapped into the error tree here, like :mod:`orchestrator.hypervisor.connection`.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import libvirt

from orchestrator.errors import HypervisorError
from orchestrator.hypervisor.connection import LibvirtConnection, map_libvirt_error

_CHUNK = 1024 * 1024
#: The manifest and other small files read back through a stream are never larger than this.
MAX_READ_BYTES = 4 * 1024 * 1024


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise map_libvirt_error(exc, what, None) from exc


def pool_xml(name: str, directory: PurePosixPath) -> str:
    """A root-only dir pool: the synced images are copies of host configuration and data."""
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = str(directory)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0700"
    ET.SubElement(perms, "owner").text = "0"
    ET.SubElement(perms, "group").text = "0"
    return ET.tostring(pool, encoding="unicode")


def volume_xml(name: str, capacity: int, fmt: str, backing: PurePosixPath | None = None) -> str:
    vol = ET.Element("volume", type="file")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=fmt)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0600"
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = str(backing)
        ET.SubElement(store, "format", type="qcow2")
    return ET.tostring(vol, encoding="unicode")


class ImagePool:
    """The pool named ``name`` at ``directory`` on ``conn``'s hypervisor (created on first use).

    Raises (from its methods): HypervisorError (libvirt failures, a pool of that name elsewhere),
    HypervisorUnavailableError (libvirtd unreachable).
    """

    def __init__(self, conn: LibvirtConnection, name: str, directory: PurePosixPath) -> None:
        self.conn, self.name, self.directory = conn, name, directory
        self._pool: Any = None

    def path(self, volume: str) -> PurePosixPath:
        return self.directory / volume

    def ensure(self) -> None:
        """Define, build and start the pool when needed; refuse one of our name at another path."""
        if self._pool is not None:
            return
        with _mapped(f"open storage pool {self.name}"):
            try:
                pool = self.conn.conn.storagePoolLookupByName(self.name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                pool = self.conn.conn.storagePoolDefineXML(pool_xml(self.name, self.directory), 0)
                pool.build(0)
                pool.setAutostart(1)
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")  # noqa: S314 - from libvirtd
            if path != str(self.directory):
                raise HypervisorError(
                    f"storage pool {self.name} exists at {path}, not at {self.directory}",
                    remedy=f"set image_dir to {path}, or `virsh pool-undefine {self.name}` on that host")
            if not pool.isActive():
                pool.create(0)
            pool.refresh(0)
        self._pool = pool

    def volumes(self) -> set[str]:
        self.ensure()
        with _mapped(f"list volumes of pool {self.name}"):
            self._pool.refresh(0)
            return {str(v.name()) for v in self._pool.listAllVolumes(0)}

    def capacity(self, volume: str) -> int:
        """The virtual size libvirt probed for ``volume`` (a qcow2's disk size, a file's length)."""
        self.ensure()
        with _mapped(f"read volume {volume}"):
            return int(self._pool.storageVolLookupByName(volume).info()[1])

    def delete(self, volume: str) -> None:
        """Remove ``volume``; a missing one is not an error."""
        self.ensure()
        with _mapped(f"delete volume {volume}"):
            try:
                vol = self._pool.storageVolLookupByName(volume)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return
                raise
            vol.delete(0)

    def upload(self, volume: str, local: Path) -> None:
        """Create ``volume`` (replacing one of that name) with the bytes of ``local``.

        Created as raw and filled byte for byte: libvirt would otherwise format a fresh qcow2 that
        the upload then overwrites. A refresh makes libvirt probe the real format afterwards."""
        self.delete(volume)
        size = local.stat().st_size
        with _mapped(f"upload {local} to {self.path(volume)}"):
            vol = self._pool.createXML(volume_xml(volume, size, "raw"), 0)
            stream = self.conn.conn.newStream(0)
            try:
                vol.upload(stream, 0, size, 0)
                with local.open("rb") as handle:
                    # libvirt asks for up to n bytes at a time; b"" ends the stream.
                    stream.sendAll(lambda _stream, n, fh: fh.read(min(n, _CHUNK)), handle)
                stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise

    def read(self, volume: str, *, limit: int = MAX_READ_BYTES) -> bytes | None:
        """The bytes of a small ``volume``; None when there is none."""
        if volume not in self.volumes():
            return None
        with _mapped(f"read {self.path(volume)}"):
            vol = self._pool.storageVolLookupByName(volume)
            stream = self.conn.conn.newStream(0)
            vol.download(stream, 0, limit + 1, 0)
            data = bytearray()
            try:
                while len(data) <= limit and (chunk := stream.recv(_CHUNK)):
                    data += chunk
                if len(data) <= limit:
                    stream.finish()
            finally:
                if len(data) > limit:
                    with contextlib.suppress(libvirt.libvirtError):
                        stream.abort()
        if len(data) > limit:
            raise HypervisorError(f"{self.path(volume)} is larger than {limit} bytes")
        return bytes(data)

    def linked_clone(self, volume: str, backing: str, capacity: int) -> PurePosixPath:
        """A new qcow2 ``volume`` of ``capacity`` bytes (the backing disk's virtual size, which the
        caller knows from qemu-img: libvirt may still see an uploaded volume as raw) over the pool's
        ``backing`` volume: the troubleshooting VM's disk, a linked clone."""
        self.ensure()
        with _mapped(f"create overlay {volume} on {backing}"):
            self._pool.createXML(volume_xml(volume, capacity, "qcow2", self.path(backing)), 0)
        return self.path(volume)

