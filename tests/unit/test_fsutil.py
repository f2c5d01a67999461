"""Crash-safe writes: the old content survives any failure and no temp file is left behind."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.fsutil import atomic_write, ensure_private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_creates_file_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    atomic_write(target, b"one")
    assert target.read_bytes() == b"one"
    assert _mode(target) == 0o600


def test_atomic_write_replaces_content_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old content")
    target.chmod(0o600)
    atomic_write(target, b"new", mode=0o644)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_atomic_write_into_missing_directory_raises_state_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "record.json"
    with pytest.raises(StateError) as info:
        atomic_write(target, b"data")
    assert f"cannot write {target}" in info.value.message
    assert info.value.remedy is not None
    assert "free space and permissions" in info.value.remedy


def test_atomic_write_failure_keeps_old_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    # The target is a non-empty directory: the final rename fails after the temp file was written.
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_text("old")
    with pytest.raises(StateError, match=re.escape(f"cannot write {target}")):
        atomic_write(target, b"new")
    assert (target / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_ensure_private_dir_creates_parents_and_forces_mode(tmp_path: Path) -> None:
    leaf = tmp_path / "a" / "b"
    assert ensure_private_dir(leaf) == leaf
    assert _mode(leaf) == 0o700
    leaf.chmod(0o755)
    ensure_private_dir(leaf, mode=0o711)
    assert _mode(leaf) == 0o711


def test_ensure_private_dir_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(StateError, match="exists and is not a directory") as info:
        ensure_private_dir(link)
    assert info.value.remedy == f"remove {link}"


def test_ensure_private_dir_on_a_file_raises_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match=re.escape(f"cannot create directory {blocker / 'sub'}")) as info:
        ensure_private_dir(blocker / "sub")
    assert info.value.remedy is not None
    assert "VMREPAIR_STATE_DIR" in info.value.remedy


def test_ensure_private_dir_on_an_existing_file_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("x")
    with pytest.raises(StateError) as info:
        ensure_private_dir(blocker)
    assert info.value.message == f"cannot create directory {blocker}: File exists and is not a directory"
    assert info.value.remedy == f"remove {blocker}"
