"""rotate_log, disk_usage and big_files over LocalTransport."""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.remote import vmrepair_agent

MIB = 1024 * 1024


def _lines(count: int) -> bytes:
    return b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * 40) for i in range(count))


def test_compress_archives_verifies_and_truncates_in_place(agent: RemoteAgent, root: Path) -> None:
    log = root / "app.log"
    content = _lines(20_000)
    log.write_bytes(content)
    log.chmod(0o640)
    with log.open("ab") as writer:  # a daemon holding its log open, as copytruncate expects
        result = agent.rotate_log(str(log), method="compress")
        writer.write(b"after rotation\n")

    assert result.archive is not None
    archive = Path(result.archive)
    assert archive.parent == root and archive.name.startswith("app.log.") and archive.name.endswith(".gz")
    assert gzip.decompress(archive.read_bytes()) == content
    assert archive.stat().st_mode & 0o777 == 0o640
    assert log.read_bytes() == b"after rotation\n"  # same inode, writer's O_APPEND lands at the start
    assert result.freed_bytes == len(content) - archive.stat().st_size
    assert result.method == "compress"


def test_compress_out_of_space_removes_the_partial_archive(
    call: Callable[..., dict[str, Any]], root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = root / "app.log"
    log.write_bytes(_lines(100))

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(vmrepair_agent, "verify_gzip", disk_full)
    answer = call("rotate_log", path=str(log), method="compress")

    assert answer == {"ok": False, "code": "nospace",
                      "error": f"no space left to compress {log}; partial archive removed"}
    assert [p.name for p in root.iterdir()] == ["app.log"]
    assert log.read_bytes() == _lines(100)


def test_truncate_keeps_the_last_mebibyte_from_a_line_start(agent: RemoteAgent, root: Path) -> None:
    log = root / "app.log"
    content = _lines(50_000)  # ~3 MiB
    log.write_bytes(content)

    result = agent.rotate_log(str(log), method="truncate")

    kept = log.read_bytes()
    assert MIB - 100 < len(kept) <= MIB
    assert content.endswith(kept)
    assert kept.startswith(b'{"n": ')  # cut at a line boundary
    assert (result.archive, result.freed_bytes) == (None, len(content) - len(kept))


def test_truncate_leaves_a_small_log_alone(agent: RemoteAgent, root: Path) -> None:
    (root / "small.log").write_bytes(b"tiny\n")
    result = agent.rotate_log(str(root / "small.log"), method="truncate")
    assert (result.freed_bytes, (root / "small.log").read_bytes()) == (0, b"tiny\n")


def test_rotate_refuses_a_symlink(agent: RemoteAgent, root: Path) -> None:
    (root / "real.log").write_bytes(b"x\n")
    (root / "app.log").symlink_to(root / "real.log")
    with pytest.raises(AgentFailedError, match="is a symlink; refusing"):
        agent.rotate_log(str(root / "app.log"), method="truncate")


def test_disk_usage_matches_statvfs(agent: RemoteAgent, root: Path) -> None:
    usage = agent.disk_usage(str(root))
    vfs = os.statvfs(root)
    assert usage.mount == str(root)
    assert usage.size_bytes == vfs.f_blocks * vfs.f_frsize
    assert 0 <= usage.used_pct <= 100 and 0 <= usage.inodes_pct <= 100
    assert usage.used_bytes + usage.avail_bytes <= usage.size_bytes
    assert usage.inodes_used <= usage.inodes_total == vfs.f_files
    if usage.used_bytes + usage.avail_bytes:
        df_pct = 100 * usage.used_bytes / (usage.used_bytes + usage.avail_bytes)
        assert usage.used_pct == pytest.approx(df_pct)


def test_disk_usage_of_a_missing_mount(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError) as info:
        agent.disk_usage(str(root / "nope"))
    assert info.value.code == "not_found"


def test_big_files_largest_first_without_following_symlinks(agent: RemoteAgent, root: Path,
                                                            tmp_path: Path) -> None:
    (root / "sub").mkdir()
    for name, size in (("a", 5000), ("sub/b", 50_000), ("c", 20_000), ("tiny", 10)):
        (root / name).write_bytes(b"x" * size)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(b"x" * 100_000)
    (root / "to-outside").symlink_to(outside)
    (root / "to-huge").symlink_to(outside / "huge")

    with (root / "c").open("ab"):
        files = agent.big_files([str(root)], min_bytes=1000, limit=2)

    assert [(f.path, f.size, f.is_open_by_writer) for f in files] == [
        (str(root / "sub" / "b"), 50_000, False),
        (str(root / "c"), 20_000, True),
    ]
    assert [f.path for f in agent.big_files([str(root)], min_bytes=1000, limit=10)] == [
        str(root / "sub" / "b"), str(root / "c"), str(root / "a")]


def test_big_files_ignores_readers(agent: RemoteAgent, root: Path) -> None:
    (root / "log").write_bytes(b"x" * 2000)
    with (root / "log").open("rb"):
        (found,) = agent.big_files([str(root)], min_bytes=1, limit=5)
    assert found.is_open_by_writer is False


def test_compressing_an_empty_log_makes_no_archive(agent: RemoteAgent, root: Path) -> None:
    (root / "empty.log").write_bytes(b"")
    result = agent.rotate_log(str(root / "empty.log"), method="compress")
    assert (result.archive, result.freed_bytes) == (None, 0)
    assert [p.name for p in root.iterdir()] == ["empty.log"]
