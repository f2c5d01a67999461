"""Content-addressed sync of images and layers to a hypervisor's pool (only what is missing).

The remote ``image_dir`` holds every file under its sha256 (``<sha256>.qcow2``, ``.kernel``,
``.initrd``) plus ``manifest.json``, the list of volumes whose upload *finished*: libvirt cannot rename a
volume, so a volume that is not in the manifest is an interrupted upload and is uploaded again.

Backing files: a layer's qcow2 names its backing file by a LOCAL absolute path. Before upload, a
temporary copy of that (small) overlay is given the RELATIVE backing name ``<backing sha256>.qcow2``
with ``qemu-img rebase -u`` (metadata only, nothing is copied). QEMU resolves a relative backing name
against the overlay's own directory, so the chain holds wherever ``image_dir`` is, the same bytes work
on every hypervisor, and nothing remote is ever rebased. The local files are never changed.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.errors import HypervisorError, TransportError
from orchestrator.imaging.store import sha256_file
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1


class SyncPool(Protocol):
    """What sync needs from :class:`~orchestrator.hypervisor.pool.ImagePool` (a fake in unit tests)."""

    def volumes(self) -> set[str]: ...
    def upload(self, volume: str, local: Path) -> None: ...
    def read(self, volume: str) -> bytes | None: ...
    def delete(self, volume: str) -> None: ...


@dataclass(frozen=True)
class SyncItem:
    """One local file, named remotely by its content."""

    content_id: str
    local: Path
    suffix: str
    #: Content id of the qcow2 this one is an overlay of (None: a base, or not a disk).
    backing: str | None = None

    @property
    def volume(self) -> str:
        return f"{self.content_id}{self.suffix}"


@dataclass(frozen=True)
class SyncResult:
    uploaded: tuple[str, ...]
    present: tuple[str, ...]


def read_manifest(pool: SyncPool) -> set[str]:
    """The volumes known complete; an unreadable or corrupt manifest counts as none (re-upload)."""
    raw = pool.read(MANIFEST)
    if raw is None:
        return set()
    try:
        data = json.loads(raw)
        volumes = data["complete"] if data.get("format") == FORMAT else None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        volumes, why = None, str(exc)
    else:
        why = "unknown format"
    if not isinstance(volumes, list):
        log.warning("ignoring the corrupt %s of the pool (%s): uploading again", MANIFEST, why)
        return set()
    return {str(v) for v in volumes}


def missing(items: Sequence[SyncItem], complete: set[str]) -> list[SyncItem]:
    """The items to upload, in the given order (backing files come first in a chain)."""
    return [item for item in items if item.volume not in complete]


def sync(pool: SyncPool, items: Sequence[SyncItem], runner: Transport) -> SyncResult:
    """Upload the ``items`` the pool lacks (backing first), recording each in the manifest.

    Raises:
        HypervisorError: an upload or the manifest write failed, or qemu-img could not rebase the copy.
    """
    complete = read_manifest(pool)
    todo = missing(items, complete)
    present = tuple(i.volume for i in items if i not in todo)
    for item in todo:
        with tempfile.TemporaryDirectory(prefix="vmrepair-sync-") as tmp:
            source = item.local
            if item.backing is not None:
                source = Path(tmp) / item.volume
                shutil.copyfile(item.local, source)
                rebase_relative(runner, source, f"{item.backing}.qcow2")
            log.info("uploading %s as %s", item.local, item.volume)
            pool.upload(item.volume, source)
        complete.add(item.volume)
        _write_manifest(pool, complete)
    return SyncResult(tuple(i.volume for i in todo), present)


def _write_manifest(pool: SyncPool, complete: set[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="vmrepair-sync-") as tmp:
        path = Path(tmp) / MANIFEST
        path.write_text(json.dumps({"format": FORMAT, "complete": sorted(complete)}, indent=1) + "\n")
        pool.upload(MANIFEST, path)


def rebase_relative(runner: Transport, overlay: Path, backing_name: str) -> None:
    """Point ``overlay``'s backing file at ``backing_name`` (metadata only: ``rebase -u``).

    Raises:
        HypervisorError: qemu-img is missing or failed.
    """
    argv = ["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", backing_name, str(overlay)]
    try:
        result = runner.run(argv, timeout=60)
    except TransportError as exc:
        raise HypervisorError(f"cannot run qemu-img: {exc}", remedy="run `make setup`") from exc
    if not result.succeeded:
        raise HypervisorError(f"cannot rebase a copy of {overlay}: {result.stderr_text.strip()}")


@dataclass(frozen=True)
class ChainDisk:
    path: Path
    virtual_size: int


def backing_chain(runner: Transport, disk: Path) -> list[ChainDisk]:
    """``disk`` and its backing files, base first (``qemu-img info --backing-chain``).

    Raises:
        HypervisorError: qemu-img failed or printed something unexpected.
    """
    argv = ["qemu-img", "info", "--backing-chain", "--output=json", "-U", str(disk)]
    try:
        result = runner.run(argv, timeout=60)
    except TransportError as exc:
        raise HypervisorError(f"cannot run qemu-img: {exc}", remedy="run `make setup`") from exc
    if not result.succeeded:
        raise HypervisorError(f"cannot read the backing chain of {disk}: {result.stderr_text.strip()}")
    try:
        entries = json.loads(result.stdout)
        chain = [ChainDisk(Path(str(e["filename"])), int(e["virtual-size"])) for e in reversed(entries)]
    except (ValueError, KeyError, TypeError) as exc:
        raise HypervisorError(f"unexpected `qemu-img info` output for {disk}: {exc}") from exc
    if not chain or any(not d.path.is_absolute() for d in chain):
        raise HypervisorError(f"unexpected backing chain of {disk}: {[str(d.path) for d in chain]}")
    return chain


def disk_items(chain: Sequence[Path], known: dict[Path, str] | None = None) -> list[SyncItem]:
    """Sync items for a backing chain (base first); ``known`` gives content ids already hashed (the
    image manifest's), the others are hashed here."""
    known = known or {}
    items: list[SyncItem] = []
    for path in chain:
        content_id = known.get(path) or sha256_file(path)
        items.append(SyncItem(content_id, path, ".qcow2", items[-1].content_id if items else None))
    return items
