"""Obtain the .deb files of exact package versions, verified, onto the orchestrator's disk.

Two sources, in this order (:func:`fetch`):

1. The target's own apt cache (:func:`from_target_cache`), read-only: no download, and exactly what
   the target installed if it is still there. Each file is copied here and checked here with dpkg-deb:
   its control fields must name the wanted package, and its ``md5sums`` member must equal the target's
   package database record. A cached .deb the target has since replaced or rebuilt differs. This proves
   the file is consistent with the target, not where it came from: a target that rewrote both could
   pass, which is acceptable because the layer reproduces that target's state in a disposable VM.
2. A Debian mirror (:func:`from_mirror`) through a private apt on the orchestrator
   (:mod:`orchestrator.layers.aptroot`): apt verifies the signed Release file and each file's hash
   against the signed index; we check hash, size and control fields again and keep a download cache.

Every file that ends up in ``dest`` is named ``NAME_VERSION_ARCH.deb`` by us, from the validated
package, never by the target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config.settings import LayerSettings
from orchestrator.errors import LayerError, TransportError
from orchestrator.facts.model import Package
from orchestrator.fsutil import ensure_private_dir, state_os_error
from orchestrator.layers.aptroot import AptRoot, IndexEntry, check_mirror, check_suite
from orchestrator.layers.debcheck import control_mismatch, file_digest, md5sums
from orchestrator.layers.debname import deb_file_name, is_valid
from orchestrator.layers.targetcache import ARCHIVES_DIR, list_archives, read_all_md5sums, read_md5sums
from orchestrator.transport.base import Transport
from orchestrator.transport.output import cap_output

SOURCE_TARGET_CACHE = "target-cache"
SOURCE_MIRROR = "mirror"
STEP_TARGET_CACHE = "fetch-target-cache"
STEP_MIRROR = "fetch-mirror"
#: layers.max_download_bytes' default, for callers of from_target_cache without settings.
DEFAULT_MAX_BYTES = 1024**3
#: Specs per ``apt-get download``: each batch is one command under the caller's deadline.
DOWNLOAD_BATCH = 50
_VERSIONS_TIMEOUT_S = 60.0


def fetch_cache_dir(image_store: Path) -> Path:
    """The private apt and download cache of the layer builds (``<image_store>/.cache/layers``); the
    verified ``.deb`` files are in its ``debs/`` directory (:func:`from_mirror`)."""
    return image_store / ".cache" / "layers"


@dataclass(frozen=True)
class DebFile:
    package: Package          # the wanted name/version/arch
    path: Path                # on the orchestrator
    sha256: str
    source: str               # "target-cache" or "mirror"


@dataclass(frozen=True)
class Fetched:
    debs: tuple[DebFile, ...]
    #: What was refused or worked around, one sentence each, for the report.
    notes: tuple[str, ...]


def fetch(target: Transport, wanted: Sequence[Package], dest: Path, *, local: Transport,
          settings: LayerSettings, default_mirror: str, suite: str, arch: str, cache_dir: Path,
          _allow_unsigned_for_tests: bool = False) -> Fetched:
    """The .debs of ``wanted`` in ``dest``: from the target's apt cache where it holds a verified copy,
    the rest from ``settings.mirror`` (else ``default_mirror``). ``settings.max_download_bytes`` caps
    the total of both. ``_allow_unsigned_for_tests``: see :func:`from_mirror`.

    Raises:
        LayerError: a package could not be obtained (the message names every one), an invalid suite
            or mirror, the mirror unreachable or over the byte budget.
        StateError: ``dest`` or ``cache_dir`` cannot be written.
    """
    mirror = settings.mirror or default_mirror
    # Configuration mistakes surface before the target is touched, not after a long copy.
    check_suite(suite)
    check_mirror(mirror, "layers.mirror")
    check_mirror(settings.security_mirror, "layers.security_mirror")
    packages = _unique(wanted)
    taken = _take_from_target_cache(target, packages, dest, local=local,
                                    max_bytes=settings.max_download_bytes)
    have = {deb.package for deb in taken.debs}
    rest = [p for p in packages if p not in have]
    mirrored = Fetched((), ())
    if rest:
        mirrored = from_mirror(rest, dest, local=local, mirror=mirror,
                               security_mirror=settings.security_mirror, suite=suite, arch=arch,
                               cache_dir=cache_dir,
                               max_bytes=settings.max_download_bytes - taken.bytes,
                               _allow_unsigned_for_tests=_allow_unsigned_for_tests)
    by_package = {deb.package: deb for deb in (*taken.debs, *mirrored.debs)}
    notes = [*taken.notes,
             *(f"{_label(p)}: the target's cached .deb {why}; downloaded from the mirror instead"
               for p, why in taken.refused),
             *mirrored.notes]
    return Fetched(tuple(by_package[p] for p in packages), tuple(notes))


def from_target_cache(target: Transport, wanted: Sequence[Package], dest: Path, *, local: Transport,
                      max_bytes: int = DEFAULT_MAX_BYTES) -> Fetched:
    """The verified .debs of ``wanted`` that the target's ``/var/cache/apt/archives`` holds, copied into
    ``dest`` (``max_bytes`` in total). Packages it lacks are simply left out; ones it holds but that
    fail verification are left out with a note. The target is only read.

    Raises:
        LayerError: dpkg-deb cannot be run on the orchestrator.
        StateError: ``dest`` cannot be written.
    """
    taken = _take_from_target_cache(target, _unique(wanted), dest, local=local, max_bytes=max_bytes)
    notes = [*taken.notes,
             *(f"{_label(p)}: the target's cached .deb {why}; not used" for p, why in taken.refused)]
    return Fetched(tuple(taken.debs), tuple(notes))


def from_mirror(wanted: Sequence[Package], dest: Path, *, local: Transport, mirror: str, security_mirror: str,
                suite: str, arch: str, cache_dir: Path, max_bytes: int, timeout: float = 600,
                _allow_unsigned_for_tests: bool = False) -> Fetched:
    """Download ``wanted`` at exactly their versions from ``mirror`` (``SUITE``, ``SUITE-updates``) and
    ``security_mirror`` (``SUITE-security``) into ``dest``, through a private apt under ``cache_dir``.
    Lists younger than six hours are reused, and so are identical files downloaded before
    (``cache_dir/debs``). ``max_bytes`` caps the total put into ``dest``, cached files included, so the
    answer does not depend on what happens to be cached. ``timeout`` is the deadline of each apt command.

    ``_allow_unsigned_for_tests`` marks the sources ``trusted=yes`` for test repositories without a
    signature; nothing in the configuration reaches it.

    Raises:
        LayerError: an invalid package, suite or mirror; ``apt-get update`` failed; versions the mirror
            does not serve (all named, with the versions it has); over ``max_bytes``; a download that
            failed or does not match the index.
        StateError: ``dest`` or ``cache_dir`` cannot be written.
    """
    check_suite(suite)
    check_mirror(mirror, "layers.mirror")
    check_mirror(security_mirror, "layers.security_mirror")
    packages = _unique(wanted)
    invalid = [p for p in packages if not is_valid(p)]
    if invalid:
        raise LayerError(f"cannot fetch {len(invalid)} package(s) whose name, version or architecture is not "
                         f"Debian syntax: {', '.join(_label(p) for p in invalid)}",
                         step=STEP_MIRROR, remedy="the target's package database holds names dpkg would not "
                                                  "accept; inspect it (dpkg-query -W) on the target")
    if not packages:
        return Fetched((), ())
    names = {p: _file_name(p) for p in packages}
    root = AptRoot.prepare(cache_dir, mirror=mirror, security_mirror=security_mirror, suite=suite, arch=arch,
                           foreign_archs=[p.arch for p in packages], allow_unsigned=_allow_unsigned_for_tests)
    specs = [p.spec for p in packages]
    with root.locked():
        is_just_updated = not root.is_fresh()
        if is_just_updated:
            root.update(local, timeout=timeout)
        entries, complaint = root.locate(local, specs, timeout=timeout)
        if not is_just_updated and any(names[p] not in entries for p in packages):
            # Reused lists may predate a version the target installed since (a security update).
            root.update(local, timeout=timeout)
            entries, complaint = root.locate(local, specs, timeout=timeout)
        missing = [p for p in packages if names[p] not in entries]
        if missing:
            raise _missing_error(root, local, missing, complaint)
        total = sum(entries[names[p]].size for p in packages)
        if total > max_bytes:
            raise LayerError(f"the {len(packages)} .debs to fetch from {mirror} total {total} bytes, "
                             f"more than the {max_bytes} bytes allowed", step=STEP_MIRROR,
                             remedy="raise layers.max_download_bytes, or use layers.scope: components")
        debs = _download_into(root, local, packages, names=names, entries=entries, dest=dest,
                              cache_dir=cache_dir, timeout=timeout)
    return Fetched(tuple(debs), ())


@dataclass
class _Taken:
    debs: list[DebFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Packages the cache holds but that were not used, with the reason (an end of a sentence).
    refused: list[tuple[Package, str]] = field(default_factory=list)
    bytes: int = 0


def _take_from_target_cache(target: Transport, packages: Sequence[Package], dest: Path, *, local: Transport,
                            max_bytes: int) -> _Taken:
    taken = _Taken()
    if not packages:
        return taken
    listing = list_archives(target)
    taken.notes.extend(listing.notes())
    for package in packages:
        if not is_valid(package):
            taken.notes.append(f"{_label(package)}: not a valid Debian name, version or architecture; "
                               "not looked for in the target's apt cache")
    wanted = [(p, name) for p in packages
              if (name := deb_file_name(p)) is not None and name in listing.sizes]
    if not wanted:
        return taken
    ensure_private_dir(dest)
    records = read_all_md5sums(target, [p for p, _ in wanted])
    try:
        # Unverified copies stay in a scratch directory beside dest: dest only ever holds checked files.
        with tempfile.TemporaryDirectory(prefix=".target-cache-", dir=dest) as scratch:
            for package, name in wanted:
                left = max_bytes - taken.bytes
                if listing.sizes[name] > left:
                    taken.refused.append((package, f"is {listing.sizes[name]} bytes, more than the {left} "
                                                   "bytes left of the download budget"))
                    continue
                copy = Path(scratch) / name
                why = _copy_and_check(target, local, package, name, copy, max_bytes=left,
                                      record=records.get(package) if records is not None else None)
                if why is not None:
                    taken.refused.append((package, why))
                    continue
                final = dest / name
                copy.replace(final)
                taken.bytes += final.stat().st_size
                taken.debs.append(DebFile(package, final, file_digest(final), SOURCE_TARGET_CACHE))
    except OSError as exc:
        raise state_os_error(f"cannot write the target's .debs to {dest}", exc, directory=dest) from exc
    return taken


def _copy_and_check(target: Transport, local: Transport, package: Package, name: str, copy: Path, *,
                    max_bytes: int, record: frozenset[bytes] | None = None) -> str | None:
    """Why the target's cached ``name`` cannot be used (the end of a sentence), or None if it can."""
    try:
        target.get_file(f"{ARCHIVES_DIR}/{name}", copy, max_bytes=max_bytes)
    except TransportError as exc:
        return f"could not be copied ({cap_output(str(exc), 300)})"
    why = control_mismatch(local, copy, package, step=STEP_TARGET_CACHE)
    if why is not None:
        return why
    ours = md5sums(local, copy, step=STEP_TARGET_CACHE)
    if ours is None:
        return "has a control archive dpkg-deb cannot read"
    if ours != (record if record is not None else read_md5sums(target, package)):
        return "does not match its package database (md5sums differ)"
    return None


def _download_into(root: AptRoot, local: Transport, packages: Sequence[Package], *, names: dict[Package, str],
                   entries: dict[str, IndexEntry], dest: Path, cache_dir: Path,
                   timeout: float) -> list[DebFile]:
    """Fill the download cache with what it lacks, then link every file into ``dest``."""
    cache = ensure_private_dir(cache_dir / "debs")
    ensure_private_dir(dest)
    digests: dict[Package, str] = {}
    try:
        for package in packages:
            digest = _matching_sha256(cache / names[package], entries[names[package]])
            if digest is not None:
                digests[package] = digest
        needed = [p for p in packages if p not in digests]
        if needed:
            # Downloads land beside the cache (same file system: a rename) and enter it only once checked.
            with tempfile.TemporaryDirectory(prefix=".incoming-", dir=cache) as scratch:
                incoming = Path(scratch)
                for start in range(0, len(needed), DOWNLOAD_BATCH):
                    batch = needed[start:start + DOWNLOAD_BATCH]
                    root.download(local, [p.spec for p in batch], into=incoming, timeout=timeout)
                for package in needed:
                    digests[package] = _check_download(root, local, package, incoming / names[package],
                                                       entries[names[package]])
                    (incoming / names[package]).replace(cache / names[package])
        debs = []
        for package in packages:
            _link_or_copy(cache / names[package], dest / names[package])
            debs.append(DebFile(package, dest / names[package], digests[package], SOURCE_MIRROR))
    except OSError as exc:
        raise state_os_error(f"cannot store the downloaded .debs in {cache} and {dest}", exc,
                             directory=cache) from exc
    return debs


def _check_download(root: AptRoot, local: Transport, package: Package, path: Path, entry: IndexEntry) -> str:
    """The sha256 of a freshly downloaded file that matches the index and names ``package``.

    Raises:
        LayerError: it is missing, differs from the index, or is another package.
    """
    digest: str | None = None
    if not path.is_file():
        why: str | None = "was not written by apt-get download"
    else:
        digest = _matching_sha256(path, entry)
        why = (f"does not match the signed index ({entry.size} bytes, {entry.algorithm} {entry.digest})"
               if digest is None else control_mismatch(local, path, package, step=STEP_MIRROR))
    if why is not None or digest is None:
        raise LayerError(f"{_label(package)} from {root.mirror}: the downloaded {entry.file_name} {why}",
                         step=STEP_MIRROR, remedy="retry later, or set layers.mirror to another mirror")
    return digest


def _matching_sha256(path: Path, entry: IndexEntry) -> str | None:
    """The file's sha256 if it exists with the index's size and digest; None otherwise."""
    if not path.is_file() or path.stat().st_size != entry.size:
        return None
    sha256 = file_digest(path)
    expected = sha256 if entry.algorithm == "sha256" else file_digest(path, entry.algorithm)
    return sha256 if expected == entry.digest else None


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs no space; the cache re-checks each file's digest before it is reused, so a
    # change made through dest would be caught, not spread.
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _missing_error(root: AptRoot, local: Transport, missing: Sequence[Package], complaint: str) -> LayerError:
    served = root.versions(local, sorted({p.name for p in missing}), timeout=_VERSIONS_TIMEOUT_S)
    parts = []
    for package in missing:
        versions = served.get(package.name)
        has = f"the mirror serves {', '.join(versions[:5])}" if versions else "the mirror does not serve it"
        parts.append(f"{_label(package)} ({package.arch}): {has}")
    detail = f" (apt: {complaint})" if complaint else ""
    return LayerError(
        f"{root.mirror} ({root.suite}) does not serve {len(missing)} package version(s) the target has: "
        f"{'; '.join(parts)}{detail}", step=STEP_MIRROR,
        remedy="set layers.mirror (and layers.security_mirror) to a snapshot of the archive from when the "
               "target was last upgraded, e.g. https://snapshot.debian.org/archive/debian/20250101T000000Z/, "
               "or keep these .debs in the target's /var/cache/apt/archives")


def _file_name(package: Package) -> str:
    """The archive file name of a package already known to be valid."""
    name = deb_file_name(package)
    if name is None:  # pragma: no cover - callers check is_valid first
        raise LayerError(f"{_label(package)}: not Debian syntax", step=STEP_MIRROR)
    return name


def _label(package: Package) -> str:
    """``name version`` for messages; the repr, made safe, when the fields are not Debian syntax."""
    if is_valid(package):
        return f"{package.name} {package.version}"
    return cap_output(repr(f"{package.name} {package.version}"), 120)


def _unique(packages: Iterable[Package]) -> list[Package]:
    """First of each name:arch=version, in order: a layer holds one file per version."""
    return list({p.spec: p for p in reversed(list(packages))}.values())[::-1]
