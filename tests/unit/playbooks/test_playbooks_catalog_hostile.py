"""A hostile drop-in directory gives a PlaybookError naming the file, never an OSError (issue 13)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config.settings import Settings
from orchestrator.errors import PlaybookError
from orchestrator.playbooks.catalog import catalog_entries


@pytest.fixture
def dropins(make_settings: Callable[..., Settings], tmp_path: Path) -> tuple[Settings, Path]:
    directory = tmp_path / "playbooks.d"
    directory.mkdir(mode=0o755)
    return make_settings(playbooks_dropin_dir=directory), directory


def test_a_dangling_symlink_in_the_dropins(dropins: tuple[Settings, Path]) -> None:
    settings, directory = dropins
    (directory / "gone.yaml").symlink_to(directory / "nowhere.yaml")
    with pytest.raises(PlaybookError) as info:
        catalog_entries(settings)
    assert info.value.message == f"{directory / 'gone.yaml'}: cannot read: No such file or directory"


def test_a_fifo_in_the_dropins(dropins: tuple[Settings, Path]) -> None:
    settings, directory = dropins
    os.mkfifo(directory / "pipe.yaml", 0o600)
    with pytest.raises(PlaybookError, match=r"pipe\.yaml: not a regular file \(a FIFO\)$"):
        catalog_entries(settings)


def test_a_symlink_loop_as_the_dropin_directory(make_settings: Callable[..., Settings],
                                                 tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PlaybookError) as info:
        catalog_entries(make_settings(playbooks_dropin_dir=loop))
    assert info.value.message.startswith(f"{loop}: cannot read the playbook drop-in directory: ")
