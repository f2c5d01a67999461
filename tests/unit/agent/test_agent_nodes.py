"""The agent's node operations on a real directory: set_symlink, remove_symlink, make_dir, remove_dir,
set_meta, with their preconditions on the lstat of the path and never following a symlink."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from orchestrator.agent.api import PathState
from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError

UID, GID = os.getuid(), os.getgid()
ABSENT = PathState("absent")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_set_symlink_creates_dangling_and_retargets_atomically(agent: RemoteAgent, root: Path) -> None:
    link = root / "current"
    entry = agent.set_symlink(str(link), "v1/missing", uid=UID, gid=GID, expect=ABSENT)
    assert str(link.readlink()) == "v1/missing" and not link.exists()   # dangling, never followed
    assert (entry.type, entry.link) == ("symlink", "v1/missing")
    with pytest.raises(AgentFailedError, match="expected absent") as info:
        agent.set_symlink(str(link), "v2", uid=UID, gid=GID, expect=ABSENT)
    assert info.value.code == "precondition"
    with pytest.raises(AgentFailedError, match="link is 'v1/missing', expected 'other'"):
        agent.set_symlink(str(link), "v2", uid=UID, gid=GID, expect=PathState("symlink", link="other"))
    agent.set_symlink(str(link), "v2", uid=UID, gid=GID, expect=PathState("symlink", link="v1/missing"))
    assert str(link.readlink()) == "v2"
    assert sorted(p.name for p in root.iterdir()) == ["current"]   # no temp link left


def test_set_symlink_never_replaces_a_file_or_writes_through_a_symlinked_parent(
    agent: RemoteAgent, root: Path, tmp_path: Path
) -> None:
    (root / "conf").write_text("x")
    with pytest.raises(AgentFailedError, match="is a file, not a symlink"):
        agent.set_symlink(str(root / "conf"), "y", uid=UID, gid=GID, expect=None)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "via").symlink_to(outside)
    with pytest.raises(AgentFailedError, match="is a symlink"):
        agent.set_symlink(str(root / "via" / "l"), "y", uid=UID, gid=GID, expect=ABSENT)
    assert list(outside.iterdir()) == []


def test_remove_symlink_checks_the_link_and_is_idempotent_without_a_precondition(
    agent: RemoteAgent, root: Path
) -> None:
    link = root / "l"
    link.symlink_to("/nowhere")
    with pytest.raises(AgentFailedError, match="expected '/else'"):
        agent.remove_symlink(str(link), expect=PathState("symlink", link="/else"))
    agent.remove_symlink(str(link), expect=PathState("symlink", link="/nowhere"))
    assert not link.is_symlink()
    agent.remove_symlink(str(link), expect=None)   # a repeated restore
    (root / "f").write_text("x")
    with pytest.raises(AgentFailedError, match="is a file, not a symlink"):
        agent.remove_symlink(str(root / "f"), expect=None)


def test_make_dir_sets_mode_owner_and_needs_its_parent(agent: RemoteAgent, root: Path) -> None:
    target = root / "d"
    entry = agent.make_dir(str(target), mode=0o2750, uid=UID, gid=GID, expect=ABSENT)
    assert target.is_dir() and _mode(target) == 0o2750 and entry.mode == 0o2750
    with pytest.raises(AgentFailedError, match="expected absent") as info:
        agent.make_dir(str(target), mode=0o755, uid=UID, gid=GID, expect=ABSENT)
    assert info.value.code == "precondition"
    agent.make_dir(str(target), mode=0o700, uid=UID, gid=GID, expect=None)   # restore: fixes the mode
    assert _mode(target) == 0o700
    with pytest.raises(AgentFailedError) as missing:
        agent.make_dir(str(root / "no" / "d"), mode=0o755, uid=UID, gid=GID, expect=ABSENT)
    assert missing.value.code == "not_found"


def test_remove_dir_only_when_empty(agent: RemoteAgent, root: Path) -> None:
    target = root / "d"
    target.mkdir()
    (target / "f").write_text("x")
    with pytest.raises(AgentFailedError, match="is not empty") as info:
        agent.remove_dir(str(target), expect=PathState("dir"))
    assert info.value.code == "precondition"
    (target / "f").unlink()
    agent.remove_dir(str(target), expect=PathState("dir"))
    assert not target.exists()
    agent.remove_dir(str(target), expect=None)   # a repeated restore
    with pytest.raises(AgentFailedError, match="is absent, expected dir"):
        agent.remove_dir(str(target), expect=PathState("dir"))


def test_set_meta_changes_a_file_in_place_under_its_content_precondition(
    agent: RemoteAgent, root: Path
) -> None:
    conf = root / "key"
    conf.write_bytes(b"secret\n")
    conf.chmod(0o644)
    inode = conf.stat().st_ino
    digest = hashlib.sha256(b"secret\n").hexdigest()
    with pytest.raises(AgentFailedError, match="sha256 is") as info:
        agent.set_meta(str(conf), mode=0o600, uid=UID, gid=GID, expect=PathState("file", sha256="0" * 64))
    assert info.value.code == "precondition" and _mode(conf) == 0o644
    with pytest.raises(AgentFailedError, match="mode is 420, expected 416"):
        agent.set_meta(str(conf), mode=0o600, uid=UID, gid=GID, expect=PathState("file", mode=0o640))
    agent.set_meta(str(conf), mode=0o600, uid=UID, gid=GID,
                   expect=PathState("file", sha256=digest, mode=0o644, uid=UID, gid=GID))
    assert _mode(conf) == 0o600 and conf.stat().st_ino == inode   # not rewritten


def test_set_meta_of_a_directory_and_an_lchown_of_a_symlink(
    agent: RemoteAgent, root: Path, tmp_path: Path
) -> None:
    directory = root / "d"
    directory.mkdir(mode=0o755)
    agent.set_meta(str(directory), mode=0o750, uid=UID, gid=GID, expect=PathState("dir", mode=0o755))
    assert _mode(directory) == 0o750
    victim = tmp_path / "victim"
    victim.write_text("x")
    victim.chmod(0o600)
    (root / "l").symlink_to(victim)
    entry = agent.set_meta(str(root / "l"), mode=0o777, uid=1 if UID == 0 else UID, gid=GID,
                           expect=PathState("symlink", link=str(victim)))
    assert entry.type == "symlink" and _mode(victim) == 0o600   # the link's target is never touched
    assert victim.stat().st_uid == UID


def test_set_meta_refuses_special_files(agent: RemoteAgent, root: Path) -> None:
    os.mkfifo(root / "fifo")
    with pytest.raises(AgentFailedError, match="is a other; only files, directories and symlinks"):
        agent.set_meta(str(root / "fifo"), mode=0o600, uid=UID, gid=GID, expect=None)


def test_sweep_removes_temp_symlinks_of_an_interrupted_retarget(agent: RemoteAgent, root: Path) -> None:
    (root / ".vmrepair-0123456789abcdef.tmp").symlink_to("/x")
    assert agent.sweep_temps([str(root)]) == [str(root / ".vmrepair-0123456789abcdef.tmp")]
