"""What a SIGHUP changes: the settings that apply to a running daemon, and those that need a restart.

Applied live (the next connection or the next check sees them):

- ``daemon.allowed_uids``      the API's uid check, and the socket's mode (0666 with allowed uids, else 0600)
- ``daemon.request_timeout_s`` the deadline of each new API connection
- ``daemon.stop_grace_s``      how long the next stop waits for a running job
- ``daemon.job_stall_s``       when the watchdog takes a job as hung

Everything else needs a restart (`systemctl restart vmrepair`), and the reload says which changed:
``daemon.socket``, ``policy``, ``target``, ``detect_interval_s``, ``baseline_interval_s`` and
``max_connections`` are built into the socket, the jobs and the accept loop at start; every other
section of config.yaml (``watch``, ``health``, ``audit``, ...) is bound into the jobs at start.
A config file that does not load or validate changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.daemon import DaemonSettings

#: ``daemon.*`` keys a running daemon applies on SIGHUP.
LIVE_KEYS = ("allowed_uids", "request_timeout_s", "stop_grace_s", "job_stall_s")


@dataclass(frozen=True)
class ReloadedConfig:
    """config.yaml as loaded again: its ``daemon:`` section, the file (None: built-in defaults) and
    the other top-level settings that differ from the running ones."""

    daemon: DaemonSettings
    path: Path | None
    other_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReloadPlan:
    #: The running settings with the live changes applied (the rest stays as started).
    settings: DaemonSettings
    #: ``daemon.<key>`` applied now.
    applied: tuple[str, ...]
    #: Changed settings that take effect only after a restart.
    needs_restart: tuple[str, ...]


def plan_reload(running: DaemonSettings, loaded: ReloadedConfig) -> ReloadPlan:
    changed = [key for key in DaemonSettings.model_fields
               if getattr(running, key) != getattr(loaded.daemon, key)]
    live = [key for key in changed if key in LIVE_KEYS]
    settings = running.model_copy(update={key: getattr(loaded.daemon, key) for key in live})
    return ReloadPlan(settings, tuple(f"daemon.{key}" for key in live),
                      (*(f"daemon.{key}" for key in changed if key not in LIVE_KEYS),
                       *loaded.other_changes))
