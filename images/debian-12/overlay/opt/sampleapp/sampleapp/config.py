"""Configuration from the environment (systemd passes /etc/default/sampleapp)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_BIND = "127.0.0.1"
DEFAULT_LOG = "/var/lib/sampleapp/interactions.jsonl"


class ConfigError(ValueError):
    """A setting in the environment cannot be used."""


@dataclass(frozen=True)
class Config:
    port: int
    bind: str
    log_path: Path


def _port(raw: str) -> int:
    try:
        port = int(raw.strip())
    except ValueError:
        raise ConfigError(f"SAMPLEAPP_PORT={raw!r} is not an integer") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"SAMPLEAPP_PORT={raw!r} is outside 0-65535")
    return port


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Read SAMPLEAPP_PORT, SAMPLEAPP_BIND and SAMPLEAPP_LOG (unset or empty: default)."""
    env = os.environ if env is None else env
    port = _port(env.get("SAMPLEAPP_PORT") or str(DEFAULT_PORT))
    bind = (env.get("SAMPLEAPP_BIND") or DEFAULT_BIND).strip()
    log_path = Path(env.get("SAMPLEAPP_LOG") or DEFAULT_LOG)
    if not log_path.is_absolute():
        raise ConfigError(f"SAMPLEAPP_LOG={str(log_path)!r} is not an absolute path")
    return Config(port=port, bind=bind, log_path=log_path)
