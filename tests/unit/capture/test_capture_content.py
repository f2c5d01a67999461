"""Reading a captured file back out of files.tar for a fix package's diff."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from orchestrator.capture.content import captured_reader


def _tar(path: Path) -> Path:
    with tarfile.open(path, mode="w") as archive:
        for name, data in (("etc/app/app.conf", b"listen 80;\n"), ("etc/app/big.conf", b"x" * 100)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("etc/app/link.conf")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        archive.addfile(link)
        folder = tarfile.TarInfo("etc/app")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
    return path


def test_a_captured_regular_file_is_read(tmp_path: Path) -> None:
    read = captured_reader(_tar(tmp_path / "files.tar"), max_bytes=64)
    assert read("/etc/app/app.conf") == b"listen 80;\n"


@pytest.mark.parametrize("path", ["/etc/app/link.conf", "/etc/app", "/etc/app/missing.conf",
                                  "/etc/app/big.conf"])
def test_anything_but_a_small_regular_file_reads_as_none(tmp_path: Path, path: str) -> None:
    assert captured_reader(_tar(tmp_path / "files.tar"), max_bytes=64)(path) is None


def test_a_missing_or_damaged_archive_reads_as_none(tmp_path: Path) -> None:
    assert captured_reader(tmp_path / "gone.tar")("/etc/app/app.conf") is None
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 100)
    assert captured_reader(tmp_path / "bad.tar")("/etc/app/app.conf") is None
