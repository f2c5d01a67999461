"""The effective value of every config key and where it came from (`vmrepair config show`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orchestrator.config.dropins import KeyPath, LayeredConfig

#: Environment variables that replace a configured value, by the key they replace.
ENV_OVERRIDES: Mapping[KeyPath, str] = {("state_dir",): "VMREPAIR_STATE_DIR",
                                        ("daemon", "socket"): "VMREPAIR_SOCKET"}


@dataclass(frozen=True)
class EffectiveValue:
    key: str
    value: Any
    #: ``default``, ``file PATH``, ``drop-in PATH`` or ``environment NAME``.
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source}


def effective_values(layered: LayeredConfig[Any], env: Mapping[str, str]) -> list[EffectiveValue]:
    """Every leaf key of the configuration (a list is one value), in the order of the models."""
    config: BaseModel = layered.config
    values: list[EffectiveValue] = []
    for key, configured in _leaves(config.model_dump(mode="json"), ()):
        variable = ENV_OVERRIDES.get(key)
        if variable and env.get(variable):
            values.append(EffectiveValue(".".join(key), env[variable], f"environment {variable}"))
        else:
            values.append(EffectiveValue(".".join(key), configured, layered.source_of(key)))
    return values


def _leaves(data: Mapping[str, Any], prefix: KeyPath) -> list[tuple[KeyPath, Any]]:
    found: list[tuple[KeyPath, Any]] = []
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            found += _leaves(value, path)
        else:
            found.append((path, value))
    return found
