"""The recipe hash: what decides whether a cached template image is still current.

It covers the builder's format version, the validated template spec and every file of the recipe
directory (relative path, mode and content). Mirror URLs are deliberately excluded: the same recipe
from another mirror of the same suite is the same image.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.imaging.template import Template

#: Bump when the builder changes what it produces for the same recipe.
BUILDER_FORMAT = 1


def recipe_dir(recipes_dir: Path, template: Template) -> Path:
    """The recipe directory of a template.

    Raises:
        ConfigError: it does not exist.
    """
    path = recipes_dir / template.spec.recipe
    if not path.is_dir():
        raise ConfigError(
            f"{template.path}: recipe: directory {path} does not exist", file=str(template.path)
        )
    return path


def recipe_hash(recipes_dir: Path, template: Template) -> str:
    digest = hashlib.sha256()
    digest.update(f"vmrepair-image-format:{BUILDER_FORMAT}\n".encode())
    digest.update(json.dumps(template.spec.model_dump(mode="json"), sort_keys=True).encode())
    root = recipe_dir(recipes_dir, template)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # os.walk lists a symlink to a directory under dirnames and never enters it: hash the link.
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in sorted([*filenames, *links]):
            path = Path(dirpath) / name
            if "__pycache__" in path.parts or name.endswith(".pyc"):
                continue
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            digest.update(f"\0{rel}\0{stat.S_IMODE(info.st_mode):o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(str(path.readlink()).encode())
            else:
                digest.update(path.read_bytes())
    return digest.hexdigest()
