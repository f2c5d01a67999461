"""manifest, pack and unpack over LocalTransport: what is captured, and that it comes back intact."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.api import Placeholder
from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _make_tree(root: Path, outside: Path) -> Path:
    """root/app: a small config tree with the shapes a capture meets."""
    app = root / "app"
    (app / "conf.d").mkdir(parents=True)
    (app / "conf.d").chmod(0o750)
    (app / "app.conf").write_bytes(b"port = 8080\n")
    (app / "app.conf").chmod(0o640)
    os.utime(app / "app.conf", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (app / "conf.d" / "empty").write_bytes(b"")
    (app / "big.log").write_bytes(b"H" * 5000 + b"m" * 20_000 + b"T" * 5000)
    (app / "current").symlink_to("conf.d")
    outside.mkdir()
    (outside / "secret").write_bytes(b"not to be captured")
    (app / "escape").symlink_to(outside)
    os.mkfifo(app / "fifo")
    return app


def test_manifest_lists_entries_without_following_symlinks(agent: RemoteAgent, root: Path) -> None:
    app = _make_tree(root, root / "outside")
    manifest = agent.manifest([str(app), str(root / "nope")])

    entries = manifest.by_path()
    conf = entries[str(app / "app.conf")]
    assert (conf.type, conf.mode, conf.size, conf.sha256) == ("file", 0o640, 12, _sha(b"port = 8080\n"))
    assert (conf.uid, conf.gid) == (os.getuid(), os.getgid())
    assert conf.owner and conf.group
    assert conf.mtime == pytest.approx(1_600_000_000.123456789)
    escape = entries[str(app / "escape")]
    assert (escape.type, escape.link, escape.sha256) == ("symlink", str(root / "outside"), None)
    assert not any(path.startswith(str(root / "outside")) for path in entries)
    assert not any(path.startswith(str(app / "escape") + "/") for path in entries)
    assert entries[str(app / "fifo")].type == "other"
    assert entries[str(app / "conf.d")].type == "dir"
    assert manifest.missing == (str(root / "nope"),)


def test_manifest_without_recursion_lists_only_the_paths_asked(agent: RemoteAgent, root: Path) -> None:
    """A probe asking whether a data directory exists must not walk and hash what it holds."""
    app = _make_tree(root, root / "outside")
    manifest = agent.manifest([str(app), str(app / "current"), str(app / "app.conf"), str(root / "nope")],
                              recursive=False)
    entries = manifest.by_path()
    assert sorted(entries) == sorted([str(app), str(app / "current"), str(app / "app.conf")])
    assert entries[str(app)].type == "dir"
    assert (entries[str(app / "current")].type, entries[str(app / "current")].link) == ("symlink", "conf.d")
    assert entries[str(app / "app.conf")].sha256 == _sha(b"port = 8080\n")
    assert manifest.missing == (str(root / "nope"),)


def test_manifest_without_digests_reads_no_file(agent: RemoteAgent, root: Path) -> None:
    """A fingerprint of unit directories needs what is there, not what the files hold."""
    app = _make_tree(root, root / "outside")
    plain, hashed = agent.manifest([str(app)], digests=False), agent.manifest([str(app)])
    assert [(e.path, e.type, e.size, e.mtime, e.link) for e in plain.entries] == [
        (e.path, e.type, e.size, e.mtime, e.link) for e in hashed.entries]
    assert all(e.sha256 is None for e in plain.entries)
    assert any(e.sha256 is not None for e in hashed.entries)


def test_manifest_of_overlapping_paths_lists_each_entry_once(agent: RemoteAgent, root: Path) -> None:
    app = _make_tree(root, root / "outside")
    manifest = agent.manifest([str(app), str(app / "conf.d")])
    paths = [e.path for e in manifest.entries]
    assert len(paths) == len(set(paths))


def test_pack_writes_a_pax_tar_and_placeholders(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    app = _make_tree(root, root / "outside")
    packed = agent.pack([str(app)], max_file_bytes=10_000)

    assert Path(packed.remote_tar).parent == Path(agent.remote_dir)
    assert Path(packed.remote_tar).stat().st_mode & 0o777 == 0o600
    local = tmp_path / "capture.tar"
    agent.fetch(packed.remote_tar, local)
    with tarfile.open(local) as tar:
        members = {m.name: m for m in tar.getmembers()}
    prefix = str(app).lstrip("/")
    conf = members[f"{prefix}/app.conf"]
    assert (conf.mode, conf.uid, conf.size) == (0o640, os.getuid(), 12)
    assert conf.uname  # names travel along with the numeric ids
    assert conf.mtime == pytest.approx(1_600_000_000.123456789)
    assert members[f"{prefix}/current"].issym()
    assert members[f"{prefix}/current"].linkname == "conf.d"
    assert members[f"{prefix}/conf.d"].isdir()
    assert f"{prefix}/fifo" not in members  # listed in the manifest, never packed
    assert f"{prefix}/big.log" not in members

    (placeholder,) = packed.placeholders
    big = (app / "big.log").read_bytes()
    assert placeholder.path == str(app / "big.log")
    # Over the cap when opened: only head and tail are read, no hash (runaway logs can be many GB).
    assert (placeholder.size, placeholder.sha256) == (30_000, None)
    assert (placeholder.head, placeholder.tail) == (big[:4096], big[-4096:])
    assert packed.manifest.by_path()[placeholder.path].sha256 is None


def test_pack_then_unpack_restores_the_tree(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    app = _make_tree(root, root / "outside")
    packed = agent.pack([str(app)], max_file_bytes=10_000)
    local = tmp_path / "capture.tar"
    agent.fetch(packed.remote_tar, local)
    original = root / "original"
    app.rename(original)  # the round trip must recreate every path from the archive alone

    remote = agent.push(local, "capture.tar")
    result = agent.unpack(remote, list(packed.placeholders), [str(app)], manifest=packed.manifest)

    assert result.failed == ()
    assert result.placeholders == (str(app / "big.log"),)
    assert not Path(remote).exists()
    for entry in packed.manifest.entries:
        restored = Path(entry.path)
        if entry.type == "other":
            assert not restored.exists()
            continue
        st = restored.lstat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (entry.mode, entry.uid, entry.gid), entry.path
        assert st.st_mtime == pytest.approx(entry.mtime, abs=1e-6), entry.path
        if entry.type == "file":
            assert _sha(restored.read_bytes()) == entry.sha256 or entry.path in result.placeholders
        if entry.type == "symlink":
            assert str(restored.readlink()) == entry.link

    big = app / "big.log"
    data = big.read_bytes()
    assert len(data) == 30_000
    assert data[:4096] == b"H" * 4096 and data[-4096:] == b"T" * 4096
    assert data[5000:25_000] == b"\0" * 20_000
    assert big.stat().st_blocks * 512 >= 30_000  # real blocks, not a sparse file
    assert big.stat().st_mode & 0o777 == (original / "big.log").stat().st_mode & 0o777

    agent.cleanup()
    assert [p.name for p in Path(agent.remote_dir).iterdir()] == [Path(agent.script_path).name]


def test_placeholder_without_manifest_entry_is_private(agent: RemoteAgent, root: Path) -> None:
    packed = agent.pack([str(root)], max_file_bytes=10)
    placeholder = Placeholder(str(root / "sub" / "ph"), 10, None, b"ab", b"yz")

    result = agent.unpack(packed.remote_tar, [placeholder], [str(root)])

    assert result.placeholders == (str(root / "sub" / "ph"),)
    assert (root / "sub" / "ph").read_bytes() == b"ab" + b"\0" * 6 + b"yz"
    assert (root / "sub" / "ph").stat().st_mode & 0o777 == 0o600
    assert (root / "sub").stat().st_mode & 0o777 == 0o755


def test_unpack_needs_an_archive_in_the_agent_dir(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "x.tar"
    with tarfile.open(elsewhere, "w"):
        pass
    with pytest.raises(AgentFailedError, match="must be in the agent directory") as info:
        agent.unpack(str(elsewhere), [], [str(root)])
    assert info.value.code == "invalid"
    assert elsewhere.exists()  # never deleted: not ours


def test_unpack_of_garbage_is_refused_and_removed(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    remote = agent.push(junk, "junk.tar")
    with pytest.raises(AgentFailedError, match="is not a tar archive") as info:
        agent.unpack(remote, [], [str(root)])
    assert info.value.code == "invalid"
    assert not Path(remote).exists()


def test_pack_refuses_paths_outside_the_given_roots(call: Callable[..., dict[str, Any]], root: Path) -> None:
    answer = call("pack", paths=["/etc"], max_file_bytes=1, roots=[str(root)])
    assert answer == {"ok": False, "code": "invalid", "error": "paths outside the allowed roots: ['/etc']"}


def test_excluded_paths_are_neither_listed_nor_packed_with_what_is_below_them(
        agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    """``watch.ignore_paths`` below a captured directory: the walk leaves the entry out and never
    enters it; a sibling whose name merely starts the same stays."""
    app = _make_tree(root, root / "outside")
    (app / "conf.d" / "cache").mkdir()
    (app / "conf.d" / "cache" / "blob").write_bytes(b"volatile")
    (app / "conf.d" / "cache.old").write_bytes(b"kept")
    ignored = str(app / "conf.d" / "cache")

    listed = agent.manifest([str(app)], exclude=[ignored]).by_path()
    packed = agent.pack([str(app)], max_file_bytes=1 << 20, exclude=[ignored])
    local = tmp_path / "pack.tar"
    agent.fetch(packed.remote_tar, local)
    with tarfile.open(local) as tar:
        members = {"/" + m.name.lstrip("/") for m in tar.getmembers()}

    for found in (set(listed), set(packed.manifest.by_path()), members):
        assert ignored not in found and str(app / "conf.d" / "cache" / "blob") not in found
        assert str(app / "conf.d" / "cache.old") in found and str(app / "app.conf") in found
