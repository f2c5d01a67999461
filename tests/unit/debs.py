"""Real .deb files for tests: an ar container with debian-binary, control.tar.gz and a data.tar whose
member headers carry the modes and owners a package ships (built with tarfile, as dpkg-deb would)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Member:
    """One data.tar member: ``name`` as dpkg-deb writes it (``./etc/x``)."""

    name: str
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = "root"
    gname: str = "root"
    link: str = ""
    #: A regular file's content (default: a line of text).
    data: bytes | None = None


def data_tar(members: list[Member], compression: str = "xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w",
                      format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.mode, info.uid, info.gid = m.kind, m.mode, m.uid, m.gid
            info.uname, info.gname, info.linkname = m.uname, m.gname, m.link
            data = (b"content\n" if m.data is None else m.data) if m.kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def ar(members: list[tuple[str, bytes]], *, magic: bytes = b"!<arch>\n") -> bytes:
    out = bytearray(magic)
    for name, data in members:
        out += (f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}".encode("ascii") + b"`\n")
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def deb(members: list[Member], compression: str = "xz", *, data_name: str | None = None) -> bytes:
    suffix = f".{compression}" if compression else ""
    return ar([("debian-binary", b"2.0\n"), ("control.tar.gz", data_tar([], "gz")),
               (data_name or f"data.tar{suffix}", data_tar(members, compression))])


def write_deb(directory: Path, name: str, members: list[Member], compression: str = "xz") -> Path:
    path = directory / name
    path.write_bytes(deb(members, compression))
    return path
