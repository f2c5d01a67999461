"""What a .deb says about itself, read on the orchestrator with ``dpkg-deb``.

The file may come from a hostile target, so it is only ever handed to dpkg-deb as one argv element (a
path we named ourselves), dpkg-deb's output is capped, and what it prints is made safe before it goes
into a note. A deb dpkg-deb cannot read, or that takes longer than :data:`CHECK_TIMEOUT_S` (a
decompression bomb), is simply not used.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from orchestrator.errors import CommandTimeoutError, LayerError, TransportError
from orchestrator.facts.model import Package
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.output import cap_output

CHECK_TIMEOUT_S = 120.0
#: The control archive of the largest Debian packages (kernel headers: one md5sums line per file) is a
#: few MiB uncompressed.
MAX_CONTROL_BYTES = 32 * 1024 * 1024
_FIELDS = ("Package", "Version", "Architecture")
_MD5SUMS_MEMBERS = ("./md5sums", "md5sums")
_CHUNK = 1024 * 1024


def control_mismatch(local: Transport, deb: Path, wanted: Package, *, step: str) -> str | None:
    """Why ``deb`` is not ``wanted`` (control fields differ, or dpkg-deb cannot read it); None if it is.

    Raises:
        LayerError: dpkg-deb cannot be run on the orchestrator at all (not installed).
    """
    result = _dpkg_deb(local, ["dpkg-deb", "--field", str(deb), *_FIELDS], step=step, max_output=64 * 1024)
    if result is None:
        return f"could not be read by dpkg-deb within {CHECK_TIMEOUT_S:g} s"
    if not result.succeeded or result.is_truncated:
        return f"is not a readable Debian package ({_first_line(result)})"
    fields: dict[str, str] = {}
    for line in result.stdout_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in _FIELDS:
            fields.setdefault(key, value.strip())
    found = tuple(fields.get(name, "") for name in _FIELDS)
    if found == (wanted.name, wanted.version, wanted.arch):
        return None
    return "is another package: its control fields say " + cap_output(" ".join(found) or "nothing", 200)


def md5sums(local: Transport, deb: Path, *, step: str) -> frozenset[bytes] | None:
    """The lines of the deb's ``md5sums`` control member (empty if it has none); None if unreadable.

    Raises:
        LayerError: dpkg-deb cannot be run on the orchestrator at all.
    """
    result = _dpkg_deb(local, ["dpkg-deb", "--ctrl-tarfile", str(deb)], step=step,
                       max_output=MAX_CONTROL_BYTES)
    if result is None or not result.succeeded or result.is_truncated:
        return None
    # The control tarball is read in memory, never extracted: its member names are the deb's to choose.
    try:
        with tarfile.open(fileobj=io.BytesIO(result.stdout), mode="r:") as archive:
            for member in archive.getmembers():
                if member.name in _MD5SUMS_MEMBERS and member.isfile():
                    handle = archive.extractfile(member)
                    return md5sum_lines(handle.read()) if handle is not None else None
    except (tarfile.TarError, EOFError, ValueError, OSError):
        return None
    return frozenset()


def md5sum_lines(data: bytes) -> frozenset[bytes]:
    """``md5sums`` content as a set of lines: dpkg keeps the deb's member verbatim in its database, so
    the same package gives the same set whatever the order or trailing blanks."""
    return frozenset(line.rstrip() for line in data.splitlines() if line.strip())


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file on the orchestrator (OSError for the caller to map)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _dpkg_deb(local: Transport, argv: list[str], *, step: str, max_output: int) -> CommandResult | None:
    """Run dpkg-deb; None when it ran past its deadline (a property of the deb, not of this machine)."""
    try:
        return local.run(argv, timeout=CHECK_TIMEOUT_S, max_output=max_output)
    except CommandTimeoutError:
        return None
    except TransportError as exc:
        raise LayerError(f"cannot run dpkg-deb on this machine: {exc}", step=step,
                         remedy="install dpkg (it provides dpkg-deb) on the orchestrator") from exc


def _first_line(result: CommandResult) -> str:
    lines = (result.stderr_text or result.stdout_text).strip().splitlines()
    return cap_output(lines[0] if lines else f"exit {result.exit_status}", 200)
