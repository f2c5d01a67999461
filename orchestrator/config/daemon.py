"""`daemon:`, `audit:` and `health:` sections of config.yaml (the host daemon and its self-healing)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DaemonPolicy = Literal["auto-repair", "ask", "detect-only"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(_Strict):
    #: Overridden by the environment variable VMREPAIR_SOCKET.
    socket: Path = Path("/run/vmrepair/api.sock")
    #: What the daemon does with an issue it cannot fix in place.
    policy: DaemonPolicy = "ask"
    target: str = "local"
    detect_interval_s: float = Field(default=60.0, ge=1, le=86400)


class AuditSettings(_Strict):
    path: Path = Path("/var/log/vmrepair/audit.jsonl")


class HealthSettings(_Strict):
    interval_s: float = Field(default=15.0, ge=0.5, le=3600)
    #: Consecutive failed polls (each already retried with backoff) before a restart.
    failures_before_restart: int = Field(default=3, ge=1, le=100)
    #: Restarts within ``restart_window_s`` before escalating to the virtualized repair pipeline.
    restarts_before_escalation: int = Field(default=3, ge=1, le=100)
    restart_window_s: float = Field(default=900.0, ge=1, le=86400)
    #: Failures in a row of a component (restarts did not help) before it is quarantined.
    quarantine_after_escalations: int = Field(default=2, ge=1, le=100)
