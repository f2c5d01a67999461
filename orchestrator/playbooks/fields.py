"""Field types shared by the playbook schema modules: names, regexes, templates and paths, each
validated where it is declared so errors land on the exact key."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator.playbooks.placeholders import parse_template

MAX_REGEX = 512
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
CAUSE_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
VAR_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
COMPONENT_PATTERN = r"^([a-z0-9][a-z0-9_-]{0,40}|\*)$"
PACKAGE_PATTERN = r"^[a-z0-9][a-z0-9+.-]{0,99}$"
#: Quarantined files go here (never under a config dir, where a glob include could still load them).
QUARANTINE_ROOT = "/var/lib/vmrepair/quarantine"


def check_quarantine_dir(value: str) -> None:
    """Raises ValueError unless ``value`` is :data:`QUARANTINE_ROOT` or below it."""
    if value != QUARANTINE_ROOT and not value.startswith(QUARANTINE_ROOT + "/"):
        raise ValueError(f"quarantine_dir must be {QUARANTINE_ROOT} or below it")


def _check_regex(value: str) -> str:
    try:
        re.compile(value, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    return value


def _check_template(value: str) -> str:
    parse_template(value)
    return value


def _check_abs(value: str) -> str:
    if not posixpath.isabs(value) or "\0" in value:
        raise ValueError("must be an absolute path")
    if posixpath.normpath(value) != value.rstrip("/") or value.rstrip("/") == "":
        raise ValueError("must be a normalised path other than / (no '..', '.', '//')")
    return value


def _check_path_template(value: str) -> str:
    template = parse_template(value)
    # A path must be absolute on its own or start with a placeholder (checked again once rendered).
    if not (value.startswith("/") or (template.parts and not isinstance(template.parts[0], str))):
        raise ValueError("must be an absolute path or start with a {placeholder}")
    return value


#: Keywords of ``restore_baseline.paths`` naming the component's own paths.
RESTORE_SCOPES = ("component", "component_config", "component_units")
#: Keywords of ``restore_baseline.quarantine_added``.
ADDED_SCOPES = ("all", "config_paths", "unit_paths")
COMPONENT_SCOPE = "component"


def _keyword_or(keywords: tuple[str, ...], check: Callable[[str], str]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        if value in keywords:
            return value
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (or one of: {', '.join(keywords)})") from exc
    return validate


def listify(cls: type[BaseModel], value: Any) -> Any:
    """A single string stands for a one-item list (``paths: component``)."""
    return [value] if isinstance(value, str) else value


Regex = Annotated[str, Field(min_length=1, max_length=MAX_REGEX), AfterValidator(_check_regex)]
Token = Annotated[str, Field(max_length=4096), AfterValidator(_check_template)]
Argv = Annotated[list[Token], Field(min_length=1, max_length=64)]
AbsPath = Annotated[str, Field(max_length=4096), AfterValidator(_check_abs)]
PathTemplate = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_check_path_template)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
RestorePath = Annotated[str, Field(min_length=1, max_length=4096),
                        AfterValidator(_keyword_or(RESTORE_SCOPES, _check_path_template))]
JsonlPath = Annotated[str, Field(min_length=1, max_length=4096),
                      AfterValidator(_keyword_or((COMPONENT_SCOPE,), _check_path_template))]
AddedRoot = Annotated[str, Field(max_length=4096), AfterValidator(_keyword_or(ADDED_SCOPES, _check_abs))]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Base of every playbook model: unknown keys are errors, and validated files are immutable."""

    # NaN passes no bound (an effectiveness of NaN would sort anywhere): refused like in config.yaml.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
