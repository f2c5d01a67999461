"""Deleting build trees only when nothing is mounted below them (fake mountinfo, fake umount)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ImageBuildError
from orchestrator.imaging.cleanup import mounts_below, safe_rmtree
from orchestrator.transport.fake import FakeTransport


def _escape(path: Path) -> str:
    return str(path).replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def _line(mount_id: int, point: Path) -> str:
    return f"{mount_id} 1 0:{mount_id} / {_escape(point)} rw,relatime shared:1 - tmpfs tmpfs rw"


def _write_mountinfo(path: Path, points: list[Path]) -> Path:
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
             *(_line(100 + i, point) for i, point in enumerate(points))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "build tree"
    (root / "proc").mkdir(parents=True)
    (root / "dev" / "pts").mkdir(parents=True)
    (root / "etc").mkdir()
    return root


def test_mounts_below_unescapes_and_orders_deepest_first(tmp_path: Path, tree: Path) -> None:
    sibling = tmp_path / "build tree2"  # shares a prefix but is not below the tree
    info = _write_mountinfo(
        tmp_path / "mountinfo",
        [tree / "dev", sibling, tree / "dev" / "pts", tree / "proc", tmp_path / "elsewhere"],
    )
    assert mounts_below(tree, mountinfo=info) == [tree / "dev" / "pts", tree / "dev", tree / "proc"]


def test_mounts_below_includes_the_path_itself(tmp_path: Path, tree: Path) -> None:
    info = _write_mountinfo(tmp_path / "mountinfo", [tree])
    assert mounts_below(tree, mountinfo=info) == [tree]


def test_mounts_below_handles_non_ascii_paths(tmp_path: Path) -> None:
    tree = tmp_path / "café tree"
    (tree / "proc").mkdir(parents=True)
    info = _write_mountinfo(tmp_path / "mountinfo", [tree / "proc"])
    assert mounts_below(tree, mountinfo=info) == [tree / "proc"]


def test_mounts_below_resolves_symlinks(tmp_path: Path, tree: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tree)
    info = _write_mountinfo(tmp_path / "mountinfo", [tree / "proc"])
    assert mounts_below(link, mountinfo=info) == [tree / "proc"]


def test_safe_rmtree_refuses_while_a_mount_remains(tmp_path: Path, tree: Path) -> None:
    info = _write_mountinfo(tmp_path / "mountinfo", [tree / "proc", tree / "dev"])
    runner = FakeTransport()  # umount "succeeds" but nothing changes: the mounts stay
    with pytest.raises(ImageBuildError) as exc_info:
        safe_rmtree(tree, runner, mountinfo=info)
    assert exc_info.value.step == "cleanup"
    assert exc_info.value.message == (
        f"refusing to delete {tree}: still mounted below it: {tree / 'proc'}, {tree / 'dev'}"
    )
    assert exc_info.value.remedy is not None
    assert "umount -l" in exc_info.value.remedy
    assert runner.argvs == [("umount", "--lazy", str(tree / "proc")),
                            ("umount", "--lazy", str(tree / "dev"))]
    assert (tree / "etc").is_dir()


def test_safe_rmtree_unmounts_then_deletes(tmp_path: Path, tree: Path) -> None:
    info = _write_mountinfo(tmp_path / "mountinfo", [tree / "dev", tree / "dev" / "pts"])
    mounted = [tree / "dev", tree / "dev" / "pts"]

    def umount(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        assert argv[:2] == ("umount", "--lazy")
        mounted.remove(Path(argv[2]))
        _write_mountinfo(info, mounted)
        return 0, b"", b""

    runner = FakeTransport(umount)
    safe_rmtree(tree, runner, mountinfo=info)
    assert not tree.exists()
    assert runner.argvs == [("umount", "--lazy", str(tree / "dev" / "pts")),
                            ("umount", "--lazy", str(tree / "dev"))]


def test_safe_rmtree_without_mounts_just_deletes(tmp_path: Path, tree: Path) -> None:
    info = _write_mountinfo(tmp_path / "mountinfo", [tmp_path / "other"])
    runner = FakeTransport()
    safe_rmtree(tree, runner, mountinfo=info)
    assert not tree.exists()
    assert runner.calls == []


def test_safe_rmtree_of_missing_path_is_a_no_op(tmp_path: Path) -> None:
    runner = FakeTransport()
    safe_rmtree(tmp_path / "absent", runner, mountinfo=tmp_path / "not-read")
    assert runner.calls == []
