"""The recipe hash decides whether a cached image is current: stable, and sensitive to every input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.imaging.recipe import BUILDER_FORMAT, recipe_dir, recipe_hash
from orchestrator.imaging.template import Template, load_template

TEMPLATE = """\
name: tiny
suite: bookworm
recipe: tiny
packages: [systemd-sysv]
memory_mib: 512
vcpus: 1
disk_size_gib: 1
kernel_cmdline: "root=/dev/vda"
"""


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "tiny.yaml").write_text(TEMPLATE)
    recipes = tmp_path / "recipes"
    overlay = recipes / "tiny" / "overlay" / "etc"
    overlay.mkdir(parents=True)
    (overlay / "motd").write_text("hello\n")
    script = recipes / "tiny" / "customize.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    return templates, recipes


def _hash(layout: tuple[Path, Path]) -> str:
    templates, recipes = layout
    return recipe_hash(recipes, load_template(templates, "tiny"))


def test_hash_is_stable(layout: tuple[Path, Path]) -> None:
    first = _hash(layout)
    assert len(first) == 64
    assert _hash(layout) == first


def test_hash_changes_with_file_content(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    (layout[1] / "tiny" / "overlay" / "etc" / "motd").write_text("hello!\n")
    assert _hash(layout) != before


def test_hash_changes_with_file_mode(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    (layout[1] / "tiny" / "customize.sh").chmod(0o700)
    assert _hash(layout) != before


def test_hash_changes_with_new_file(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    (layout[1] / "tiny" / "overlay" / "etc" / "issue").write_text("x\n")
    assert _hash(layout) != before


def test_hash_changes_when_a_file_is_renamed(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    etc = layout[1] / "tiny" / "overlay" / "etc"
    (etc / "motd").rename(etc / "motd2")
    assert _hash(layout) != before


def test_hash_changes_with_symlink_target(layout: tuple[Path, Path]) -> None:
    link = layout[1] / "tiny" / "overlay" / "etc" / "localtime"
    link.symlink_to("/usr/share/zoneinfo/UTC")
    before = _hash(layout)
    link.unlink()
    link.symlink_to("/usr/share/zoneinfo/Europe/Paris")
    assert _hash(layout) != before


def test_hash_changes_with_directory_symlink_target(
    layout: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = layout[1] / "tiny" / "overlay" / "srv"
    link.symlink_to(tmp_path / "a")
    before = _hash(layout)
    link.unlink()
    link.symlink_to(tmp_path / "b")
    assert _hash(layout) != before


def test_hash_of_a_recipe_without_links_is_unchanged_by_link_handling(
    layout: tuple[Path, Path],
) -> None:
    # Pinned so a change to how the hash is computed (a forced rebuild for every user) is deliberate.
    templates, recipes = layout
    template = load_template(templates, "tiny")
    digest = hashlib.sha256()
    digest.update(f"vmrepair-image-format:{BUILDER_FORMAT}\n".encode())
    digest.update(json.dumps(template.spec.model_dump(mode="json"), sort_keys=True).encode())
    for rel, mode in (("customize.sh", 0o755), ("overlay/etc/motd", 0o644)):
        digest.update(f"\0{rel}\0{mode:o}\0".encode())
        digest.update((recipes / "tiny" / rel).read_bytes())
    (recipes / "tiny" / "overlay" / "etc" / "motd").chmod(0o644)
    assert recipe_hash(recipes, template) == digest.hexdigest()


def test_hash_changes_with_the_template(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    path = layout[0] / "tiny.yaml"
    path.write_text(path.read_text().replace("memory_mib: 512", "memory_mib: 1024"))
    assert _hash(layout) != before


def test_hash_ignores_template_comments(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    path = layout[0] / "tiny.yaml"
    path.write_text("# a comment changes nothing that is built\n" + path.read_text())
    assert _hash(layout) == before


def test_hash_ignores_python_bytecode(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    cache = layout[1] / "tiny" / "overlay" / "app" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "mod.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (layout[1] / "tiny" / "overlay" / "app" / "stray.pyc").write_bytes(b"\x00")
    assert _hash(layout) == before


def test_missing_recipe_directory_names_template_file(layout: tuple[Path, Path]) -> None:
    templates, recipes = layout
    template: Template = load_template(templates, "tiny")
    missing = recipes / "gone"
    (recipes / "tiny").rename(missing)
    with pytest.raises(ConfigError) as info:
        recipe_dir(recipes, template)
    assert info.value.message == (
        f"{template.path}: recipe: directory {recipes / 'tiny'} does not exist"
    )
    with pytest.raises(ConfigError):
        recipe_hash(recipes, template)
