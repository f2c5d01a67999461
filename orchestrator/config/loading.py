"""YAML file -> a strict SafeLoader -> pydantic ``model_validate``, with size caps and readable errors.

Every validation error is rendered as ``FILE: path.to.key: message`` inside one :class:`ConfigError`,
the way copier does it, so the user knows which file and which key to fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.config import strict_yaml
from orchestrator.errors import ConfigError

#: Config, template and playbook files are small; anything bigger is a mistake or an attack.
MAX_YAML_BYTES = 256 * 1024
#: An error lists this many problems at most, each key path and message clipped to MAX_PART_CHARS.
MAX_ERROR_LINES = 20
MAX_PART_CHARS = 200
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}

ModelT = TypeVar("ModelT", bound=BaseModel)


def render_validation_error(file: str, exc: ValidationError) -> str:
    """One line per problem: ``file: a.b[2].c: message``; at most :data:`MAX_ERROR_LINES` of them, each
    part clipped, so a hostile file cannot make the error itself huge."""
    errors = exc.errors()
    lines = []
    for err in errors[:MAX_ERROR_LINES]:
        loc = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in err["loc"])
        loc = loc.replace(".[", "[") or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here; check spelling)"
        lines.append(f"{file}: {clip(loc)}: {clip(msg)}")
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"{file}: ... and {len(errors) - MAX_ERROR_LINES} more problems")
    return "\n".join(lines)


def clip(text: str, limit: int = MAX_PART_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def read_regular_file(path: Path, *, max_bytes: int, refuse_world_writable: bool = False) -> bytes:
    """At most ``max_bytes + 1`` bytes of the regular file ``path``.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` before the first read: a FIFO would block the
    read forever and a device (``/dev/zero``) never ends, so anything but a regular file is refused.
    With ``refuse_world_writable`` a file every user may write is refused too (checked on the opened
    file, so a swap between the check and the read cannot slip one in): the daemon runs as root and
    its config decides what it runs.

    Raises:
        ConfigError: missing, unreadable, not a regular file, or (when asked) writable by every user.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: cannot read: is a directory", file=str(path),
                              remedy="name a YAML file, not a directory")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')})",
                              file=str(path), remedy="name a YAML file")
        if refuse_world_writable and mode & stat.S_IWOTH:
            raise ConfigError(f"{path}: writable by every user; refusing to load configuration from it",
                              file=str(path), remedy=f"chmod o-w {path}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from exc
    finally:
        os.close(fd)


def load_yaml_text(path: Path, *, max_bytes: int = MAX_YAML_BYTES, refuse_world_writable: bool = False,
                   ) -> object:
    """Read and parse a YAML file safely (:mod:`orchestrator.config.strict_yaml`).

    Raises:
        ConfigError: missing, unreadable, not a regular file, too large, not valid YAML (including
            duplicate keys, nesting past the cap and alias bombs), or writable by every user when
            ``refuse_world_writable`` (see :func:`read_regular_file`).
    """
    raw = read_regular_file(path, max_bytes=max_bytes, refuse_world_writable=refuse_world_writable)
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
        return strict_yaml.parse(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and getattr(exc, "problem", None):  # "but found another document" needs its context
            problem = f"{context}, {problem}"
        raise ConfigError(f"{path}: malformed YAML{where}: {clip(problem)}", file=str(path)) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # SafeLoader's own constructors raise these for values that match a pattern but do not exist
        # (a timestamp like 2024-13-45 is datetime(2024, 13, 45)).
        raise ConfigError(f"{path}: malformed YAML: {clip(str(exc))}", file=str(path)) from exc


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
