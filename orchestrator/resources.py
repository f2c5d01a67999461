"""Where the data files that ship inside the package are: playbooks, VM templates and image recipes.

The project keeps them in the top-level ``playbooks/``, ``vm_templates/``, ``images/``, ``faults/`` and
``etc/`` (the config schema and example) directories;
``orchestrator/data/`` holds relative symlinks to them, declared as package data in ``pyproject.toml``,
so a built wheel carries real copies under ``orchestrator/data/``. Looking them up through
:mod:`importlib.resources` finds the same files in a source checkout, an editable install and an
installed wheel, with no path computed from the source tree.

The directories are returned as real :class:`~pathlib.Path` objects because their users need a file
system (``cp -a`` of an image overlay, ``os.walk`` for the recipe hash): a zipped install (zipimport)
is not supported and raises :class:`~orchestrator.errors.ConfigError`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final, Literal

from orchestrator.errors import ConfigError

PACKAGE: Final = "orchestrator"
#: The package-relative folder of the shipped data (``orchestrator/data/``).
DATA_DIR: Final = "data"

DataKind = Literal["playbooks", "vm_templates", "images", "faults", "etc"]
#: Every kind of shipped data, by the name of its top-level directory in the project.
DATA_KINDS: Final[tuple[DataKind, ...]] = ("playbooks", "vm_templates", "images", "faults", "etc")


def shipped_dir(kind: DataKind) -> Path:
    """The shipped directory of ``kind`` inside the installed package.

    Raises:
        ConfigError: the package is not installed on a file system (zipped), or the directory is
            missing (a broken install, or a wheel built without its package data).
    """
    traversable = resources.files(PACKAGE).joinpath(DATA_DIR, kind)
    if not isinstance(traversable, Path):
        raise ConfigError(
            f"{PACKAGE}/{DATA_DIR}/{kind}: the package's data files are not on a file system "
            f"({type(traversable).__name__})",
            remedy="install vmrepair unzipped (pip install), not as a zip archive",
        )
    if not traversable.is_dir():
        raise ConfigError(
            f"{traversable}: shipped {kind} directory not found",
            file=str(traversable), remedy="reinstall vmrepair; its package data is incomplete",
        )
    return traversable


def shipped_playbooks_dir() -> Path:
    """The shipped playbooks (``playbooks/*.yaml`` and the JSON schema). Raises like :func:`shipped_dir`."""
    return shipped_dir("playbooks")


def shipped_templates_dir() -> Path:
    """The shipped VM templates (``vm_templates/*.yaml``). Raises like :func:`shipped_dir`."""
    return shipped_dir("vm_templates")


def shipped_config_dir() -> Path:
    """The config.yaml JSON schema and commented example (``etc/``), to install in /etc/vmrepair.
    Raises like :func:`shipped_dir`."""
    return shipped_dir("etc")


def shipped_recipes_dir() -> Path:
    """The shipped image recipes (``images/NAME/``). Raises like :func:`shipped_dir`."""
    return shipped_dir("images")
