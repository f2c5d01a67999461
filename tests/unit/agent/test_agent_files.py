"""read_file, write_file, remove_file and move_file over LocalTransport."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError

UID, GID = os.getuid(), os.getgid()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".vmrepair-")]


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return None
    return shm if shm.stat().st_dev != Path(tempfile.gettempdir()).stat().st_dev else None


# -- read_file ---------------------------------------------------------------------------------


def test_read_file_returns_bytes(agent: RemoteAgent, root: Path) -> None:
    data = bytes(range(256)) * 10
    (root / "f").write_bytes(data)
    assert agent.read_file(str(root / "f"), max_bytes=len(data)) == data


def test_read_file_refuses_files_over_max_bytes(agent: RemoteAgent, root: Path) -> None:
    (root / "f").write_bytes(b"12345")
    with pytest.raises(AgentFailedError, match=r"larger than 4 bytes") as info:
        agent.read_file(str(root / "f"), max_bytes=4)
    assert info.value.code == "invalid"


def test_read_file_refuses_a_fifo_without_hanging(agent: RemoteAgent, root: Path) -> None:
    os.mkfifo(root / "fifo")
    with pytest.raises(AgentFailedError, match="is not a regular file"):
        agent.read_file(str(root / "fifo"), max_bytes=10)


def test_read_file_of_a_missing_file_is_not_found(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError, match="No such file") as info:
        agent.read_file(str(root / "nope"), max_bytes=10)
    assert info.value.code == "not_found"


# -- write_file --------------------------------------------------------------------------------


def test_write_file_creates_parents_and_applies_mode(agent: RemoteAgent, root: Path) -> None:
    target = root / "a" / "b" / "conf"
    entry = agent.write_file(str(target), b"new\n", mode=0o640, uid=UID, gid=GID, expect_sha256="absent")

    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert (root / "a").stat().st_mode & 0o777 == 0o755
    assert (entry.path, entry.type, entry.mode, entry.size, entry.sha256) == (
        str(target), "file", 0o640, 4, _sha(b"new\n"))
    assert _no_temp_files(target.parent)


def test_write_file_preconditions(agent: RemoteAgent, root: Path) -> None:
    target = root / "conf"
    target.write_bytes(b"captured")

    with pytest.raises(AgentFailedError, match="exists but was absent at capture") as absent:
        agent.write_file(str(target), b"x", mode=0o644, uid=UID, gid=GID, expect_sha256="absent")
    with pytest.raises(AgentFailedError, match="changed since capture") as changed:
        agent.write_file(str(target), b"x", mode=0o644, uid=UID, gid=GID, expect_sha256=_sha(b"other"))
    assert absent.value.code == changed.value.code == "precondition"
    assert target.read_bytes() == b"captured"

    agent.write_file(str(target), b"fixed", mode=0o644, uid=UID, gid=GID, expect_sha256=_sha(b"captured"))
    assert target.read_bytes() == b"fixed"
    agent.write_file(str(target), b"again", mode=0o600, uid=UID, gid=GID)  # no precondition
    assert (target.read_bytes(), target.stat().st_mode & 0o777) == (b"again", 0o600)
    assert _no_temp_files(root)


def test_write_file_expecting_content_of_a_missing_file_fails(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError, match="no longer a regular file") as info:
        agent.write_file(str(root / "gone"), b"x", mode=0o644, uid=UID, gid=GID, expect_sha256=_sha(b"x"))
    assert info.value.code == "precondition"
    assert not (root / "gone").exists()


def test_write_file_refuses_a_symlinked_parent(agent: RemoteAgent, root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "etc").symlink_to(elsewhere)

    with pytest.raises(AgentFailedError, match=f"refusing {root}/etc/conf: {root}/etc is a symlink") as info:
        agent.write_file(str(root / "etc" / "conf"), b"x", mode=0o644, uid=UID, gid=GID)
    assert info.value.code == "invalid"
    assert list(elsewhere.iterdir()) == []


def test_write_file_refuses_a_symlink_or_directory_target(agent: RemoteAgent, root: Path,
                                                          tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (root / "link").symlink_to(victim)
    (root / "dir").mkdir()

    with pytest.raises(AgentFailedError, match="is a symlink, not a regular file"):
        agent.write_file(str(root / "link"), b"x", mode=0o644, uid=UID, gid=GID)
    with pytest.raises(AgentFailedError, match="is a dir, not a regular file"):
        agent.write_file(str(root / "dir"), b"x", mode=0o644, uid=UID, gid=GID)
    assert victim.read_bytes() == b"keep"


def test_write_file_refuses_paths_that_are_not_normalised(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError, match="is not normalised"):
        agent.write_file(f"{root}/x/../y", b"x", mode=0o644, uid=UID, gid=GID)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root (chown)")
def test_write_file_sets_another_owner(agent: RemoteAgent, root: Path) -> None:
    entry = agent.write_file(str(root / "owned"), b"x", mode=0o4755, uid=65534, gid=65534)
    st = (root / "owned").stat()
    # fchmod after fchown: chown clears setuid, so the mode must survive the ownership change.
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o4755)
    assert (entry.uid, entry.gid) == (65534, 65534)


# -- remove_file -------------------------------------------------------------------------------


def test_remove_file_preconditions(agent: RemoteAgent, root: Path) -> None:
    target = root / "f"
    target.write_bytes(b"captured")
    with pytest.raises(AgentFailedError, match="changed since capture") as info:
        agent.remove_file(str(target), expect_sha256=_sha(b"other"))
    assert info.value.code == "precondition"
    assert target.exists()

    agent.remove_file(str(target), expect_sha256=_sha(b"captured"))
    assert not target.exists()
    agent.remove_file(str(target), expect_sha256="absent")  # already gone, as expected
    agent.remove_file(str(root / "no" / "dir"), expect_sha256="absent")
    with pytest.raises(AgentFailedError, match="does not exist") as missing:
        agent.remove_file(str(target))
    assert missing.value.code == "not_found"


def test_remove_file_refuses_directories_and_removes_symlinks_not_targets(
    agent: RemoteAgent, root: Path, tmp_path: Path,
) -> None:
    (root / "dir").mkdir()
    with pytest.raises(AgentFailedError, match="is a dir; only files are removed"):
        agent.remove_file(str(root / "dir"))
    target = tmp_path / "target"
    target.write_bytes(b"t")
    (root / "link").symlink_to(target)
    agent.remove_file(str(root / "link"))
    assert not (root / "link").is_symlink()
    assert target.exists()


# -- move_file ---------------------------------------------------------------------------------


def test_move_file_renames_and_creates_a_private_parent(agent: RemoteAgent, root: Path) -> None:
    (root / "f").write_bytes(b"data")
    agent.move_file(str(root / "f"), str(root / "quarantine" / "f"))
    assert (root / "quarantine" / "f").read_bytes() == b"data"
    assert not (root / "f").exists()
    assert (root / "quarantine").stat().st_mode & 0o777 == 0o700


def test_move_file_refuses_to_overwrite(agent: RemoteAgent, root: Path) -> None:
    (root / "a").write_bytes(b"a")
    (root / "b").write_bytes(b"b")
    with pytest.raises(AgentFailedError, match="already exists; refusing to overwrite") as info:
        agent.move_file(str(root / "a"), str(root / "b"))
    assert info.value.code == "precondition"
    assert ((root / "a").read_bytes(), (root / "b").read_bytes()) == (b"a", b"b")


def test_move_file_of_a_missing_source_is_not_found(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError) as info:
        agent.move_file(str(root / "nope"), str(root / "dst"))
    assert info.value.code == "not_found"


def test_move_file_across_filesystems_copies(agent: RemoteAgent, root: Path) -> None:
    other = _other_filesystem()
    if other is None:
        pytest.skip("needs /dev/shm writable on another filesystem than the temp dir")
    source = root / "f"
    source.write_bytes(b"payload" * 1000)
    source.chmod(0o640)
    os.utime(source, (1_500_000_000, 1_500_000_000))
    dst_dir = Path(tempfile.mkdtemp(dir=other, prefix="vmrepair-test-"))
    try:
        agent.move_file(str(source), str(dst_dir / "moved"))
        moved = dst_dir / "moved"
        assert moved.read_bytes() == b"payload" * 1000
        assert (moved.stat().st_mode & 0o777, moved.stat().st_mtime) == (0o640, 1_500_000_000)
        assert not source.exists()
        assert _no_temp_files(dst_dir)
    finally:
        for child in dst_dir.iterdir():
            child.unlink()
        dst_dir.rmdir()


def test_sweep_temps_removes_only_files_named_like_interrupted_replaces(
    agent: RemoteAgent, root: Path
) -> None:
    (root / "d").mkdir()
    stale = root / "d" / ".vmrepair-0123456789abcdef.tmp"
    stale.write_bytes(b"half a config")
    keep = [root / "d" / "app.conf", root / "d" / ".vmrepair-short.tmp",
            root / "d" / "x.vmrepair-0123456789abcdef.tmp"]
    for path in keep:
        path.write_bytes(b"keep")
    (root / "d" / ".vmrepair-fedcba9876543210.tmp").mkdir()   # a directory of that name is left alone
    assert agent.sweep_temps([str(root / "d"), str(root / "missing")]) == [str(stale)]
    assert not stale.exists() and all(p.exists() for p in keep)
