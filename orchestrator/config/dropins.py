"""``config.yaml`` plus the drop-ins of ``config_dropin_dir`` (default ``/etc/vmrepair/config.d``), and
where each value came from.

The drop-ins are the ``*.yaml`` files of the directory, merged in lexical order over ``config.yaml``:
a mapping is merged key by key into the mapping below it, anything else (a list, a scalar, ``null``)
replaces what was there. Files whose name starts with a dot (editors' swap and backup files) are
skipped; ``*.yml`` files are skipped with a warning, as for playbook drop-ins.

Each file is validated as soon as it is merged, so an error names the drop-in that made the
configuration invalid (``FILE: path.to.key: message``). Only ``config.yaml`` may set
``config_dropin_dir``: a drop-in that moved the directory would decide which drop-ins are read.

Trust, decided like the playbook drop-ins: the daemon runs as root and its configuration decides
which commands run, so a world-writable directory or file (``config.yaml`` included) is refused, not
skipped. Symbolic links are followed (the ``conf.d`` habit of linking in a shared file), and the file
they lead to must pass the same checks; a dangling link is an error, never silently ignored.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.config.loading import load_yaml_text, render_validation_error
from orchestrator.errors import ConfigError

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
KeyPath = tuple[str, ...]
#: The key only config.yaml may set.
DROPIN_DIR_KEY = "config_dropin_dir"
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class LayeredConfig(Generic[ModelT]):
    """The validated merge of the config file and its drop-ins, with each set key's source."""

    config: ModelT
    path: Path | None
    dropin_dir: Path
    dropins: tuple[Path, ...]
    #: Key path -> ``file PATH`` / ``drop-in PATH`` for every key a file set (leaves of the files).
    origins: Mapping[KeyPath, str]

    def source_of(self, key: KeyPath) -> str:
        """Where the value at ``key`` came from: the file that set it (or a mapping above it), else
        ``default``."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.origins:
                return self.origins[key[:end]]
        return DEFAULT_SOURCE


def load_layered(model: type[ModelT], path: Path | None, dropin_dir: Callable[[ModelT], Path],
                 ) -> LayeredConfig[ModelT]:
    """Validate ``path`` (None: no file, defaults), then merge and validate each drop-in of the
    directory ``dropin_dir`` names in the validated file.

    Raises:
        ConfigError: a file is unreadable, malformed, writable by every user or invalid (the message
            names it), the drop-in directory is unusable, or a drop-in sets ``config_dropin_dir``.
    """
    merged: dict[str, Any] = {} if path is None else read_mapping(path)
    config = _validate(model, merged, path)
    origins: dict[KeyPath, str] = {}
    if path is not None:
        _note_origins(origins, merged, (), f"file {path}")
    directory = dropin_dir(config)
    dropins = tuple(list_dropins(directory))
    for dropin in dropins:
        data = read_mapping(dropin)
        if DROPIN_DIR_KEY in data:
            raise ConfigError(f"{dropin}: {DROPIN_DIR_KEY}: only {path or 'config.yaml'} may set this",
                              file=str(dropin), remedy=f"move {DROPIN_DIR_KEY} to the main config file")
        merged = deep_merge(merged, data)
        config = _validate(model, merged, dropin)
        _note_origins(origins, data, (), f"drop-in {dropin}")
    return LayeredConfig(config, path, directory, dropins, origins)


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is an empty mapping).

    Raises:
        ConfigError: as :func:`~orchestrator.config.loading.load_yaml_text` (world-writable files
            refused), or the document is not a mapping.
    """
    data = load_yaml_text(path, refuse_world_writable=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of keys, got {type(data).__name__}",
                          file=str(path))
    return data


def list_dropins(directory: Path) -> list[Path]:
    """The drop-ins of ``directory`` in the order they apply; none when it does not exist.

    Raises:
        ConfigError: it is a dangling link, not a directory, unreadable or writable by every user.
    """
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        if not directory.is_symlink():
            return []
        raise ConfigError(f"{directory}: config drop-in directory is a symbolic link to nowhere",
                          file=str(directory), remedy=f"fix or remove the link {directory}") from None
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot read the config drop-in directory: {exc.strerror}",
                          file=str(directory)) from exc
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"{directory}: config drop-in directory is not a directory", file=str(directory))
    if mode & stat.S_IWOTH:
        # Anyone could add a file that the root daemon then obeys.
        raise ConfigError(f"{directory}: writable by every user; refusing to load configuration from it",
                          file=str(directory), remedy=f"chmod o-w {directory}")
    try:
        names = sorted(entry.name for entry in directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot list the config drop-in directory: {exc.strerror}",
                          file=str(directory)) from exc
    for name in names:
        if name.endswith(".yml") and not name.startswith("."):
            log.warning("%s: ignored; config drop-ins must end in .yaml", directory / name)
    # Lexical order of the names as bytes would differ from str order only for non-ASCII names;
    # sorted() on str is what `ls` shows under LC_ALL=C for ASCII, the names people use.
    return [directory / name for name in names if name.endswith(".yaml") and not name.startswith(".")]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings key by key, everything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def _validate(model: type[ModelT], data: dict[str, Any], blame: Path | None) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        name = str(blame) if blame is not None else "(defaults)"
        raise ConfigError(render_validation_error(name, exc), file=name) from exc


def _note_origins(origins: dict[KeyPath, str], data: Mapping[str, Any], prefix: KeyPath, source: str) -> None:
    """Record ``source`` for every leaf of ``data``: what it replaces (the key itself, anything
    below it, a scalar above it that a mapping now replaces) stops counting."""
    for key, value in data.items():
        path = (*prefix, str(key))
        for end in range(1, len(path)):
            origins.pop(path[:end], None)
        if isinstance(value, dict) and value:
            _note_origins(origins, value, path, source)
            continue
        for known in [k for k in origins if k[:len(path)] == path]:
            del origins[known]
        if not (isinstance(value, dict) and not value):  # `ssh: {}` sets nothing
            origins[path] = source
