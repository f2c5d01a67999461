"""The recipe hash: what decides whether a cached template image is still current.

It covers the builder's format version, the validated template spec and every file of the recipe
directories (``recipe``, then ``extra_recipe``: relative path, mode and content). Mirror URLs are
deliberately excluded: the same recipe from another mirror of the same suite is the same image.

Recipes ship as package data, and only the exec bit of a file survives that trip intact: git records
nothing else, and pip writes package data with the installer's umask (and byte-compiles the overlay's
Python files next to them). So a file's mode counts as its :func:`canonical_mode`, in the hash and in
the image (:func:`normalize_overlay`), and Python bytecode counts as nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.imaging.template import Template

#: Bump when the builder changes what it produces for the same recipe.
BUILDER_FORMAT = 1


def canonical_mode(mode: int) -> int:
    """The mode a recipe entry gets in the image: 0755 for directories and executables, else 0644."""
    return 0o755 if stat.S_ISDIR(mode) or mode & 0o111 else 0o644


def is_bytecode(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def normalize_overlay(overlay: Path, tree: Path) -> None:
    """After ``cp -a OVERLAY/. TREE``: give what came from the overlay its canonical mode (``cp -a``
    would put an installer's umask on /etc or /opt of the image) and remove the bytecode it brought."""
    tree.chmod(canonical_mode(overlay.stat().st_mode))
    root = tree.resolve()
    for dirpath, dirnames, filenames in os.walk(overlay):
        for name in sorted([*dirnames, *filenames]):
            source = Path(dirpath) / name
            target = tree / source.relative_to(overlay)
            info = source.lstat()
            # The build runs as root: never touch a file through a link of the tree that leads out
            # of it (an absolute link such as /etc/resolv.conf would lead to the host's file).
            if target.is_symlink() or not target.resolve().is_relative_to(root):
                continue
            if is_bytecode(source):
                if not stat.S_ISDIR(info.st_mode):
                    target.unlink(missing_ok=True)
            elif not stat.S_ISLNK(info.st_mode):
                target.chmod(canonical_mode(info.st_mode))
    # Deepest first, so a cache inside a cache (never seen, but cheap) goes too; the tree's own caches stay.
    for cache in sorted(overlay.rglob("__pycache__"), reverse=True):
        target = tree / cache.relative_to(overlay)
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()


def recipe_dir(recipes_dir: Path, template: Template) -> Path:
    """The (first) recipe directory of a template.

    Raises:
        ConfigError: it does not exist.
    """
    return recipe_dirs(recipes_dir, template)[0]


def recipe_dirs(recipes_dir: Path, template: Template) -> tuple[Path, ...]:
    """The recipe directories of a template in the order they are applied: ``recipe``, then
    ``extra_recipe`` if the template has one.

    Raises:
        ConfigError: one of them does not exist (the message names its key in the template).
    """
    spec = template.spec
    named = [("recipe", spec.recipe)]
    if spec.extra_recipe is not None:
        named.append(("extra_recipe", spec.extra_recipe))
    paths: list[Path] = []
    for key, name in named:
        path = recipes_dir / name
        if not path.is_dir():
            raise ConfigError(
                f"{template.path}: {key}: directory {path} does not exist", file=str(template.path)
            )
        paths.append(path)
    return tuple(paths)


def recipe_hash(recipes_dir: Path, template: Template) -> str:
    digest = hashlib.sha256()
    digest.update(f"vmrepair-image-format:{BUILDER_FORMAT}\n".encode())
    # A template without an extra recipe hashes as it did before the key existed: adding it must not
    # make every built image (and its warm state) look outdated.
    unset = {"extra_recipe"} if template.spec.extra_recipe is None else set()
    digest.update(json.dumps(template.spec.model_dump(mode="json", exclude=unset), sort_keys=True).encode())
    first, *extra = recipe_dirs(recipes_dir, template)
    for chunk in _tree_chunks(first):
        digest.update(chunk)
    for root in extra:
        # A separator, so a file moved from one recipe to the other (applied at another time) counts.
        digest.update(f"\0extra_recipe\0{root.name}\0".encode())
        for chunk in _tree_chunks(root):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_chunks(root: Path) -> Iterator[bytes]:
    """What the hash takes from a recipe directory: each file's relative path, canonical mode and
    content (a link's target), in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # os.walk lists a symlink to a directory under dirnames and never enters it: hash the link.
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in sorted([*filenames, *links]):
            path = Path(dirpath) / name
            if is_bytecode(path):
                continue
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            # A link's own mode is always 0777; for the rest only what reaches the image counts.
            mode = stat.S_IMODE(info.st_mode) if stat.S_ISLNK(info.st_mode) else canonical_mode(info.st_mode)
            yield f"\0{rel}\0{mode:o}\0".encode()
            yield str(path.readlink()).encode() if stat.S_ISLNK(info.st_mode) else path.read_bytes()
