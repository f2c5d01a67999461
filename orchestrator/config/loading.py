"""YAML file -> ``yaml.safe_load`` -> pydantic ``model_validate``, with size caps and readable errors.

Every validation error is rendered as ``FILE: path.to.key: message`` inside one :class:`ConfigError`,
the way copier does it, so the user knows which file and which key to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.errors import ConfigError

#: Config, template and playbook files are small; anything bigger is a mistake or an attack.
MAX_YAML_BYTES = 256 * 1024

ModelT = TypeVar("ModelT", bound=BaseModel)


def render_validation_error(file: str, exc: ValidationError) -> str:
    """One line per problem: ``file: a.b[2].c: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in err["loc"])
        loc = loc.replace(".[", "[") or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here; check spelling)"
        lines.append(f"{file}: {loc}: {msg}")
    return "\n".join(lines)


def load_yaml_text(path: Path, *, max_bytes: int = MAX_YAML_BYTES) -> object:
    """Read and parse a YAML file safely.

    Raises:
        ConfigError: missing, unreadable, too large, or not valid YAML.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from exc
    if len(raw) > max_bytes:
        raise ConfigError(
            f"{path}: file is larger than {max_bytes} bytes", file=str(path),
            remedy="config, template and playbook files must be small YAML documents",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})", file=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}", file=str(path)) from exc


def load_model(path: Path, model: type[ModelT], *, max_bytes: int = MAX_YAML_BYTES) -> ModelT:
    """Load ``path`` as YAML and validate it against ``model``.

    An empty file validates as an empty mapping (all defaults).

    Raises:
        ConfigError: the file cannot be read/parsed or does not match the schema.
    """
    data = load_yaml_text(path, max_bytes=max_bytes)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: (top level): expected a mapping of keys, got {type(data).__name__}",
            file=str(path),
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render_validation_error(str(path), exc), file=str(path)) from exc
