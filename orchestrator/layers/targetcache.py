"""Read the target's apt cache and package database, read-only, for :mod:`orchestrator.layers.debs`.

Everything the target prints is hostile. The listing is NUL-separated (a file name may hold a newline),
every name must be a well-formed archive name (:mod:`orchestrator.layers.debname`), the count is
capped, and no path from the listing is ever opened: the caller builds the file name from the package
it wants and only asks whether the listing has it.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import TransportError
from orchestrator.facts.model import Package
from orchestrator.layers.debcheck import md5sum_lines
from orchestrator.layers.debname import parse_deb_file_name
from orchestrator.transport.base import Transport
from orchestrator.transport.output import cap_output

ARCHIVES_DIR = "/var/cache/apt/archives"
DPKG_INFO_DIR = "/var/lib/dpkg/info"
#: Entries of the listing looked at; a cache that was never cleaned holds a few thousand.
MAX_LISTING = 10_000
MAX_LISTING_OUTPUT = 4 * 1024 * 1024
#: A package database md5sums record (one line per file: the kernel's is ~1 MiB).
MAX_MD5SUMS_BYTES = 16 * 1024 * 1024
LIST_TIMEOUT_S = 60.0
MAX_BATCH_BYTES = 64 * 1024 * 1024
LIST_ARGV = ("find", ARCHIVES_DIR, "-maxdepth", "1", "-type", "f", "-name", "*.deb",
             "-printf", "%f\\t%s\\0")
_MAX_SIZE_DIGITS = 15


@dataclass(frozen=True)
class Listing:
    """Well-formed archive names in the target's cache with their sizes (as the target claims)."""

    sizes: dict[str, int]
    rejected: int = 0
    truncated: bool = False
    #: Why there is no listing at all (the command failed); empty when it ran.
    failure: str = ""

    def notes(self) -> list[str]:
        notes = [f"the target's apt cache could not be listed ({self.failure}); nothing taken from it"] \
            if self.failure else []
        if self.rejected:
            notes.append(f"the target's apt cache listing had {self.rejected} entries that are not Debian "
                         "archive file names; ignored")
        if self.truncated:
            notes.append(f"the target's apt cache listing was cut after {MAX_LISTING} entries; packages past "
                         "the cut are fetched from the mirror")
        return notes


def list_archives(target: Transport) -> Listing:
    """One ``find`` over the target's ``/var/cache/apt/archives``. Never raises: a target that cannot
    be listed only means nothing comes from its cache."""
    try:
        result = target.run(LIST_ARGV, timeout=LIST_TIMEOUT_S, max_output=MAX_LISTING_OUTPUT)
    except TransportError as exc:
        return Listing({}, failure=cap_output(str(exc), 300))
    if not result.succeeded:
        tail = result.stderr_text.strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
        return Listing({}, failure=cap_output(tail[0], 300))
    return parse_listing(result.stdout, is_cut=result.stdout_dropped > 0)


def parse_listing(stdout: bytes, *, is_cut: bool = False) -> Listing:
    """``NAME\\tSIZE\\0`` records; a record the output cap cut in two is dropped, not guessed at."""
    records = stdout.split(b"\0")
    # The last piece is empty after a complete listing; anything else was cut by the output cap.
    incomplete = records.pop()
    truncated = is_cut or bool(incomplete)
    sizes: dict[str, int] = {}
    rejected = 0
    if len(records) > MAX_LISTING:
        records, truncated = records[:MAX_LISTING], True
    for record in records:
        name, size = _parse_record(record)
        if name is None:
            rejected += 1
        else:
            sizes[name] = size
    return Listing(sizes, rejected=rejected, truncated=truncated)


def _parse_record(record: bytes) -> tuple[str | None, int]:
    fields = record.split(b"\t")
    if len(fields) != 2 or not fields[1].isdigit() or len(fields[1]) > _MAX_SIZE_DIGITS:
        return None, 0
    try:
        name = fields[0].decode("ascii")
    except UnicodeDecodeError:
        return None, 0
    return (name, int(fields[1])) if parse_deb_file_name(name) is not None else (None, 0)


def read_all_md5sums(target: Transport,
                     packages: Sequence[Package]) -> dict[Package, frozenset[bytes]] | None:
    """The md5sums records of ``packages`` in one command (one tar of ``/var/lib/dpkg/info``), instead of
    two or three SFTP round trips per package: about 15 s for 30 packages against a TCG guest. None when
    the batch cannot be had (the caller then asks per package). Only the members asked for are read,
    from memory, size-capped: the archive comes from the target."""
    names = {f"{n}.md5sums": p for p in packages for n in (f"{p.name}:{p.arch}", p.name)}
    try:
        result = target.run(["tar", "-c", "-f", "-", "--ignore-failed-read", "-C", DPKG_INFO_DIR, "--",
                             *sorted(names)], timeout=LIST_TIMEOUT_S, max_output=MAX_BATCH_BYTES)
    except TransportError:
        return None
    if not result.succeeded or result.is_truncated:
        return None
    found: dict[Package, frozenset[bytes]] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(result.stdout), mode="r:") as tar:
            for member in tar:
                package = names.get(member.name)
                if package is None or not member.isfile() or member.size > MAX_MD5SUMS_BYTES:
                    continue
                handle = tar.extractfile(member)
                # NAME:ARCH.md5sums wins over NAME.md5sums, as in read_md5sums.
                if handle is not None and (package not in found or ":" in member.name):
                    found[package] = md5sum_lines(handle.read())
    except (tarfile.TarError, OSError):
        return None
    return {p: found.get(p, frozenset()) for p in packages}


def read_md5sums(target: Transport, package: Package) -> frozenset[bytes]:
    """The target's package database record of ``package``'s file checksums; empty if it has none.

    dpkg names it ``NAME:ARCH.md5sums`` for Multi-Arch: same packages and ``NAME.md5sums`` otherwise.
    A record that cannot be fetched counts as absent: the deb's own md5sums then fail to match it,
    unless the deb has none either (a package without files), which is the consistent case.
    """
    with tempfile.TemporaryDirectory(prefix="vmrepair-md5sums-") as scratch:
        local = Path(scratch) / "md5sums"
        for name in (f"{package.name}:{package.arch}", package.name):
            try:
                target.get_file(f"{DPKG_INFO_DIR}/{name}.md5sums", local, max_bytes=MAX_MD5SUMS_BYTES)
            except TransportError:
                continue
            return md5sum_lines(local.read_bytes())
    return frozenset()
