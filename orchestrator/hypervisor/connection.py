"""One object owns the libvirt connection; every libvirt error is mapped here, at the boundary.

libvirt's default error handler prints every error to stderr before raising; it is silenced once so
errors arrive only as exceptions, which :func:`_mapped` turns into the project's error tree.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from orchestrator.errors import (
    HypervisorError,
    HypervisorUnavailableError,
    SnapshotError,
    VmNotFoundError,
)
from orchestrator.hypervisor.domain_xml import VMREPAIR_NS, InstanceMetadata

log = logging.getLogger(__name__)

START_REMEDY = (
    "start the daemons: `virtlogd -d && libvirtd -d` (without systemd) or "
    "`systemctl start libvirtd`; `make setup` does this"
)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _silence(_ctx: object, _err: object) -> None:
    return None


libvirt.registerErrorHandler(_silence, None)

#: libvirt error codes that mean "the thing is not there", mapped to specific classes.
_NOT_FOUND = {libvirt.VIR_ERR_NO_DOMAIN: VmNotFoundError, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT: SnapshotError}
_UNAVAILABLE = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC}


def map_libvirt_error(exc: libvirt.libvirtError, what: str, domain: str | None) -> HypervisorError:
    """Translate one libvirt error. Every libvirt error leaves this package as a HypervisorError."""
    code = exc.get_error_code()
    message = f"{what}: {exc.get_error_message() or exc}"
    if code in _NOT_FOUND:
        return _NOT_FOUND[code](message, domain=domain)
    if code in _UNAVAILABLE and exc.get_error_domain() in (
        libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_NONE,
    ):
        return HypervisorUnavailableError(message, domain=domain, remedy=START_REMEDY)
    if code == libvirt.VIR_ERR_OPERATION_INVALID and "snapshot" in what:
        return SnapshotError(message, domain=domain)
    return HypervisorError(message, domain=domain)


@contextlib.contextmanager
def _mapped(what: str, domain: str | None = None) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise map_libvirt_error(exc, what, domain) from exc


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    created: int
    is_current: bool


class DomainHandle:
    """A libvirt domain, with every call mapped into the error tree."""

    def __init__(self, dom: Any) -> None:
        self._dom = dom
        self.name: str = dom.name()

    def is_active(self) -> bool:
        with _mapped("query state", self.name):
            return bool(self._dom.isActive())

    def state_name(self) -> str:
        with _mapped("query state", self.name):
            state, _reason = self._dom.state()
        names = {
            libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
            libvirt.VIR_DOMAIN_SHUTOFF: "shut off", libvirt.VIR_DOMAIN_CRASHED: "crashed",
            libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
        }
        return names.get(state, "unknown")

    def metadata(self) -> InstanceMetadata | None:
        try:
            text = self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, VMREPAIR_NS)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise map_libvirt_error(exc, "read metadata", self.name) from exc
        return InstanceMetadata.from_xml(text)

    def start(self) -> None:
        with _mapped("start", self.name):
            self._dom.create()

    def reboot(self) -> None:
        with _mapped("reboot", self.name):
            self._dom.reboot(0)

    def force_stop(self) -> None:
        """Stop immediately (power off); a no-op on a stopped domain."""
        if not self.is_active():
            return
        with _mapped("stop", self.name):
            self._dom.destroy()

    def undefine(self) -> None:
        flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        with _mapped("undefine", self.name):
            self._dom.undefineFlags(flags)

    def snapshot_create(self, name: str, description: str = "") -> None:
        xml = (
            f"<domainsnapshot><name>{_xml_text(name)}</name><description>{_xml_text(description)}</description></domainsnapshot>"
        )
        with _mapped(f"create snapshot {name!r}", self.name):
            self._dom.snapshotCreateXML(xml, 0)

    def snapshots(self) -> list[SnapshotInfo]:
        with _mapped("list snapshots", self.name):
            snaps = self._dom.listAllSnapshots(0)
            current = self._dom.snapshotCurrent(0).getName() if self._dom.hasCurrentSnapshot(0) else None
            infos = []
            for snap in snaps:
                xml = snap.getXMLDesc(0)
                created = _creation_time(xml)
                infos.append(SnapshotInfo(snap.getName(), created, snap.getName() == current))
        return sorted(infos, key=lambda s: s.created)

    def snapshot_revert(self, name: str) -> None:
        with _mapped(f"revert to snapshot {name!r}", self.name):
            snap = self._dom.snapshotLookupByName(name, 0)
            self._dom.revertToSnapshot(snap, 0)

    def snapshot_delete(self, name: str) -> None:
        with _mapped(f"delete snapshot {name!r}", self.name):
            self._dom.snapshotLookupByName(name, 0).delete(0)

    def xml(self) -> str:
        with _mapped("read XML", self.name):
            return str(self._dom.XMLDesc(0))

    def save_state(self, path: Path) -> None:
        """Save the memory state to ``path`` and stop the domain (virDomainSave)."""
        with _mapped(f"save state to {path}", self.name):
            self._dom.save(str(path))


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _creation_time(xml: str) -> int:
    start = xml.find("<creationTime>")
    end = xml.find("</creationTime>")
    if start < 0 or end < 0:
        return 0
    try:
        return int(xml[start + len("<creationTime>") : end])
    except ValueError:
        return 0


class LibvirtConnection:
    """Owns one libvirt connection (opened lazily) and caches capability probes.

    Raises:
        HypervisorUnavailableError: libvirtd cannot be reached (message carries the remedy).
        HypervisorError: any other libvirt failure.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise HypervisorUnavailableError(
                    f"cannot connect to libvirt at {self.uri}: {exc.get_error_message() or exc}",
                    remedy=START_REMEDY,
                ) from exc
        return self._conn

    def version(self) -> str:
        with _mapped("query version"):
            raw = int(self.conn.getLibVersion())
        return f"{raw // 1_000_000}.{raw // 1000 % 1000}.{raw % 1000}"

    def lookup(self, name: str) -> DomainHandle | None:
        try:
            return DomainHandle(self.conn.lookupByName(name))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            if exc.get_error_code() is not None:
                raise map_libvirt_error(exc, f"look up {name}", name) from exc
        # libvirt-python reads the thread's last error after the failed call; a finalizer of another
        # libvirt object run by the GC in between calls into libvirt and resets it, so "no such domain"
        # arrives without a code. Ask once more with the GC held off (a lookup changes nothing).
        with _gc_paused():
            try:
                return DomainHandle(self.conn.lookupByName(name))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise map_libvirt_error(exc, f"look up {name}", name) from exc

    def define(self, xml: str, name: str) -> DomainHandle:
        with _mapped("define domain", name):
            return DomainHandle(self.conn.defineXML(xml))

    def saved_state_xml(self, path: Path) -> str:
        with _mapped(f"read saved state {path}"):
            return str(self.conn.saveImageGetXMLDesc(str(path), 0))

    def restore_state(self, path: Path, xml: str, name: str) -> DomainHandle:
        """Restore a saved state with an edited XML; the domain runs (transient) afterwards."""
        with _mapped(f"restore state {path}", name):
            self.conn.restoreFlags(str(path), xml, libvirt.VIR_DOMAIN_SAVE_RUNNING)
            return DomainHandle(self.conn.lookupByName(name))

    def domains(self) -> list[DomainHandle]:
        with _mapped("list domains"):
            return [DomainHandle(d) for d in self.conn.listAllDomains(0)]

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None
