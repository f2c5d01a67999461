"""unpack treats the archive as hostile: nothing may land outside the roots, whatever the names say."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from orchestrator.agent.api import Placeholder
from orchestrator.agent.client import RemoteAgent


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"x", kind: bytes = tarfile.REGTYPE,
         link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def _unpack(agent: RemoteAgent, tmp_path: Path, build: list[tuple[str, dict[str, object]]],
            roots: list[str], placeholders: list[Placeholder] | None = None) -> dict[str, str]:
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, options in build:
            _add(tar, name, **options)  # type: ignore[arg-type]
    result = agent.unpack(agent.push(archive, "hostile.tar"), placeholders or [], roots)
    return dict(result.failed) | dict.fromkeys(result.written, "written")


def test_dotdot_names_are_refused(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    rel = str(root).lstrip("/")
    outcome = _unpack(agent, tmp_path, [
        (f"{rel}/../../escaped", {}),
        ("../../etc/vmrepair-test-escaped", {}),
        (f"{rel}/ok", {"data": b"fine"}),
    ], [str(root)])

    assert outcome[f"{rel}/../../escaped"] == "name contains '..'"
    assert outcome["../../etc/vmrepair-test-escaped"] == "name contains '..'"
    assert outcome[str(root / "ok")] == "written"
    assert (root / "ok").read_bytes() == b"fine"
    assert not (tmp_path.parent / "escaped").exists()
    assert not Path("/etc/vmrepair-test-escaped").exists()


def test_paths_outside_the_roots_are_refused(agent: RemoteAgent, root: Path, tmp_path: Path,
                                             outside: Path) -> None:
    outcome = _unpack(agent, tmp_path, [
        (str(outside / "abs"), {}),                        # absolute name
        (str(outside / "rel").lstrip("/"), {}),            # relative name, outside all the same
        (str(root) + "-sibling/x", {}),                    # a prefix of the root is not the root
    ], [str(root)])

    assert set(outcome.values()) == {"outside the allowed roots"}
    assert list(outside.iterdir()) == []
    assert not Path(str(root) + "-sibling").exists()


def test_writing_through_an_extracted_symlink_is_refused(agent: RemoteAgent, root: Path, tmp_path: Path,
                                                         outside: Path) -> None:
    rel = str(root).lstrip("/")
    outcome = _unpack(agent, tmp_path, [
        (f"{rel}/link", {"kind": tarfile.SYMTYPE, "link": str(outside)}),
        (f"{rel}/link/pwned", {"data": b"evil"}),
        (f"{rel}/link/sub", {"kind": tarfile.DIRTYPE}),
        (f"{rel}/link", {"kind": tarfile.DIRTYPE}),         # a directory over the symlink
    ], [str(root)])

    assert outcome[str(root / "link/pwned")] == f"refusing {root}/link/pwned: {root}/link is a symlink"
    assert outcome[str(root / "link/sub")].endswith("is a symlink")
    assert list(outside.iterdir()) == []
    assert (root / "link").is_symlink()  # the symlink itself is content, and inside the roots


def test_links_devices_and_fifos_are_refused(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    rel = str(root).lstrip("/")
    outcome = _unpack(agent, tmp_path, [
        (f"{rel}/hard", {"kind": tarfile.LNKTYPE, "link": "/etc/shadow"}),
        (f"{rel}/dev", {"kind": tarfile.CHRTYPE}),
        (f"{rel}/pipe", {"kind": tarfile.FIFOTYPE}),
    ], [str(root)])

    assert outcome == {
        str(root / "hard"): "hard links are refused",
        str(root / "dev"): "devices, fifos and other special members are refused",
        str(root / "pipe"): "devices, fifos and other special members are refused",
    }
    assert list(root.iterdir()) == []


def test_a_directory_in_the_way_is_reported(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    (root / "taken").mkdir()
    rel = str(root).lstrip("/")
    outcome = _unpack(agent, tmp_path, [(f"{rel}/taken", {"data": b"file"})], [str(root)])
    assert outcome == {str(root / "taken"): "a directory is in the way"}
    assert (root / "taken").is_dir()


def test_placeholders_obey_the_roots_too(agent: RemoteAgent, root: Path, tmp_path: Path,
                                        outside: Path) -> None:
    (root / "lnk").symlink_to(outside)
    outcome = _unpack(agent, tmp_path, [], [str(root)], [
        Placeholder(str(outside / "ph"), 10, None),
        Placeholder(str(root / "lnk" / "ph"), 10, None),
    ])
    assert outcome == {
        str(outside / "ph"): "outside the allowed roots",
        str(root / "lnk" / "ph"): f"refusing {root}/lnk/ph: {root}/lnk is a symlink",
    }
    assert list(outside.iterdir()) == []
