"""The recipe hash decides whether a cached image is current: stable, and sensitive to every input."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.imaging.recipe import (
    BUILDER_FORMAT,
    canonical_mode,
    normalize_overlay,
    recipe_dir,
    recipe_dirs,
    recipe_hash,
)
from orchestrator.imaging.template import Template, list_templates, load_template
from orchestrator.resources import shipped_recipes_dir, shipped_templates_dir

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


def test_hash_changes_with_the_exec_bit(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    (layout[1] / "tiny" / "customize.sh").chmod(0o644)
    assert _hash(layout) != before


def test_hash_ignores_modes_an_installer_umask_sets(layout: tuple[Path, Path]) -> None:
    # A wheel installed with umask 077 must not look like another recipe than the checkout.
    before = _hash(layout)
    recipe = layout[1] / "tiny"
    (recipe / "customize.sh").chmod(0o700)
    (recipe / "overlay" / "etc" / "motd").chmod(0o600)
    (recipe / "overlay" / "etc").chmod(0o700)
    assert _hash(layout) == before


@pytest.mark.parametrize(("mode", "expected"), [
    (stat.S_IFREG | 0o644, 0o644), (stat.S_IFREG | 0o600, 0o644), (stat.S_IFREG | 0o700, 0o755),
    (stat.S_IFREG | 0o711, 0o755), (stat.S_IFDIR | 0o700, 0o755), (stat.S_IFDIR | 0o755, 0o755),
])
def test_canonical_mode_keeps_only_the_exec_bit(mode: int, expected: int) -> None:
    assert canonical_mode(mode) == expected


def test_normalize_overlay_fixes_modes_and_drops_bytecode(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    app = overlay / "opt" / "app"
    (app / "__pycache__").mkdir(parents=True)
    (app / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\x00")
    (app / "mod.py").write_text("x = 1\n")
    (app / "run").write_text("#!/bin/sh\n")
    (overlay / "etc").mkdir()
    (overlay / "etc" / "hostname").write_text("vm\n")
    (overlay / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    # What pip leaves under umask 077, and what `cp -a` would carry into the image.
    for path, mode in ((app / "mod.py", 0o600), (app / "run", 0o711), (overlay / "etc" / "hostname", 0o600),
                       (app, 0o700), (overlay / "etc", 0o700), (overlay, 0o700)):
        path.chmod(mode)
    tree = tmp_path / "tree"
    (tree / "opt" / "app" / "__pycache__").mkdir(parents=True)
    (tree / "opt" / "app" / "__pycache__" / "base.cpython-311.pyc").write_bytes(b"from the tree")
    shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
    normalize_overlay(overlay, tree)
    modes = {path.relative_to(tree).as_posix(): stat.S_IMODE(path.lstat().st_mode)
             for path in [tree, *tree.rglob("*")] if not path.is_symlink()}
    assert modes == {".": 0o755, "etc": 0o755, "etc/hostname": 0o644, "opt": 0o755, "opt/app": 0o755,
                     "opt/app/mod.py": 0o644, "opt/app/run": 0o755, "opt/app/__pycache__": 0o755,
                     "opt/app/__pycache__/base.cpython-311.pyc": 0o644}
    assert (tree / "etc" / "localtime").readlink() == Path("/usr/share/zoneinfo/UTC")


def test_normalize_overlay_never_follows_a_link_out_of_the_tree(tmp_path: Path) -> None:
    host_file = tmp_path / "host-resolv.conf"
    host_file.write_text("nameserver 127.0.0.53\n")
    host_file.chmod(0o600)
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "resolv.conf").write_text("nameserver 10.0.2.3\n")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "resolv.conf").symlink_to(host_file)
    normalize_overlay(overlay, tree)
    assert stat.S_IMODE(host_file.stat().st_mode) == 0o600


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
    # The spec as it was dumped before `extra_recipe` existed: templates without one keep their hash.
    spec = template.spec.model_dump(mode="json")
    assert spec.pop("extra_recipe") is None
    digest.update(json.dumps(spec, sort_keys=True).encode())
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


# --- extra_recipe ----------------------------------------------------------------------------------


def _add_extra_recipe(layout: tuple[Path, Path]) -> Path:
    """Give the template ``extra_recipe: tiny-extra`` with an overlay file and a customize.sh."""
    templates, recipes = layout
    path = templates / "tiny.yaml"
    path.write_text(path.read_text() + "extra_recipe: tiny-extra\n")
    extra = recipes / "tiny-extra"
    (extra / "overlay" / "etc").mkdir(parents=True)
    (extra / "overlay" / "etc" / "issue").write_text("extra\n")
    (extra / "customize.sh").write_text("#!/bin/sh\ntrue\n")
    return extra


def test_recipe_dirs_are_the_recipe_then_the_extra_recipe(layout: tuple[Path, Path]) -> None:
    templates, recipes = layout
    assert recipe_dirs(recipes, load_template(templates, "tiny")) == (recipes / "tiny",)
    _add_extra_recipe(layout)
    assert recipe_dirs(recipes, load_template(templates, "tiny")) == (
        recipes / "tiny", recipes / "tiny-extra")


def test_hash_changes_when_an_extra_recipe_is_added(layout: tuple[Path, Path]) -> None:
    before = _hash(layout)
    _add_extra_recipe(layout)
    assert _hash(layout) != before


def test_hash_covers_the_files_of_the_extra_recipe(layout: tuple[Path, Path]) -> None:
    extra = _add_extra_recipe(layout)
    before = _hash(layout)
    (extra / "overlay" / "etc" / "issue").write_text("changed\n")
    assert _hash(layout) != before
    changed = _hash(layout)
    (extra / "customize.sh").chmod(0o755)
    assert _hash(layout) != changed


def test_hash_changes_when_a_file_moves_between_the_recipes(layout: tuple[Path, Path]) -> None:
    # Same path, same content, but copied at another step: the extra overlay wins over the first.
    recipes = layout[1]
    extra = _add_extra_recipe(layout)
    motd = "overlay/etc/motd"
    before = _hash(layout)
    (recipes / "tiny" / motd).rename(extra / motd)
    assert _hash(layout) != before


def test_missing_extra_recipe_directory_names_the_key(layout: tuple[Path, Path]) -> None:
    templates, recipes = layout
    extra = _add_extra_recipe(layout)
    shutil.rmtree(extra)
    template = load_template(templates, "tiny")
    with pytest.raises(ConfigError) as info:
        recipe_hash(recipes, template)
    assert info.value.message == f"{template.path}: extra_recipe: directory {extra} does not exist"
    assert info.value.file == str(template.path)


def test_every_shipped_template_has_its_recipe_directories() -> None:
    for path in list_templates(shipped_templates_dir()):
        template = load_template(shipped_templates_dir(), str(path))
        assert [d.name for d in recipe_dirs(shipped_recipes_dir(), template)] == list(template.spec.recipes)
