"""`daemon:`, `audit:` and `health:` sections of config.yaml (the host daemon and its self-healing)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.config.values import AbsolutePath, Uid

DaemonPolicy = Literal["auto-repair", "ask", "detect-only"]


class _Strict(BaseModel):
    # NaN passes no bound and infinity some: a NaN stability period once failed mid-pipeline.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DaemonSettings(_Strict):
    """How `vmrepair daemon` watches its target and serves its local API (see orchestrator.daemon)."""

    #: Overridden by the environment variable VMREPAIR_SOCKET.
    socket: AbsolutePath = Path("/run/vmrepair/api.sock")
    #: What the daemon does with the issues a detection finds: ``auto-repair`` runs the repair
    #: pipeline (and lets the health monitor restart units), ``ask`` records them as pending and
    #: leaves the target alone, ``detect-only`` records them only.
    policy: DaemonPolicy = "ask"
    target: str = "local"
    detect_interval_s: float = Field(default=60.0, ge=1, le=86400)
    #: How often the daemon looks for a reboot that fell due (a maintenance window opened, the time
    #: `vmrepair reboot schedule AT` set came) and performs it.
    reboot_check_interval_s: float = Field(default=30.0, ge=1, le=3600)
    #: A baseline is recorded at most this often, and only after a detection without critical issues.
    baseline_interval_s: float = Field(default=6 * 3600.0, ge=60, le=30 * 86400)
    #: uids besides root allowed on the API socket (checked with SO_PEERCRED). They also need access
    #: to the socket's directory, which the daemon creates 0700.
    allowed_uids: tuple[Uid, ...] = ()
    #: A client must send its whole request within this time, or the connection is closed.
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: Connections served at once; more are answered 503 and closed.
    max_connections: int = Field(default=16, ge=1, le=1024)
    #: On SIGTERM, how long to wait for a running job (a repair) before abandoning it; an abandoned
    #: fix application is finished or rolled back by the start-up recovery of the next start.
    stop_grace_s: float = Field(default=3.0, ge=0, le=600)
    #: A job running longer than this is taken as hung: watchdog pings stop, so systemd restarts us.
    job_stall_s: float = Field(default=3600.0, ge=10, le=86400)


class AuditSettings(_Strict):
    path: AbsolutePath = Path("/var/log/vmrepair/audit.jsonl")


class HealthSettings(_Strict):
    """How the health monitor (orchestrator.health) polls endpoints and when it restarts or escalates."""

    interval_s: float = Field(default=15.0, ge=0.5, le=3600)
    #: Tries of one endpoint per poll (the first and its retries, with exponential backoff between
    #: them) before the poll counts as failed: a single slow answer is not an outage.
    poll_attempts: int = Field(default=3, ge=1, le=10)
    poll_backoff_s: float = Field(default=1.0, ge=0, le=60)
    poll_backoff_max_s: float = Field(default=8.0, ge=0, le=300)
    #: Consecutive failed polls (each already retried with backoff) before a restart.
    failures_before_restart: int = Field(default=3, ge=1, le=100)
    #: Restarts within ``restart_window_s`` before escalating to the virtualized repair pipeline.
    restarts_before_escalation: int = Field(default=3, ge=1, le=100)
    restart_window_s: float = Field(default=900.0, ge=1, le=86400)
    #: Failures in a row of a component (restarts did not help) before it is quarantined.
    quarantine_after_escalations: int = Field(default=2, ge=1, le=100)
    #: A restart (health monitor or in-place repair) still activating/deactivating after this long has
    #: its unit's processes killed through systemd and counts as a failed restart.
    restart_deadline_s: float = Field(default=90.0, ge=5, le=3600)
    #: Automatic restarts (systemd's NRestarts) of a unit within ``restart_window_s``, or systemd giving
    #: up (start-limit-hit), that make a restart loop: the component is quarantined.
    quarantine_after_unit_restarts: int = Field(default=5, ge=2, le=1000)
    #: Failed repair runs of a component within ``failed_repairs_window_s`` before it is quarantined.
    quarantine_after_failed_repairs: int = Field(default=3, ge=1, le=100)
    failed_repairs_window_s: float = Field(default=86400.0, ge=60, le=30 * 86400)
    #: A blind restart (health monitor, in-place repair) is refused, and the component escalated,
    #: when the dependency findings a restart cannot cure add up to more than this many points: its
    #: own package named by ``dpkg --audit`` (40), ``pip check`` failing (30), a Requires= unit failed
    #: or gone (25). A failed Wants= unit or other packages in ``dpkg --audit`` (10 each) never count.
    #: The default refuses on any one of them (orchestrator.bootdiag.verdict).
    blind_restart_max_points: int = Field(default=24, ge=0, le=1000)
    #: Issues of a component whose dependency score (0-100) is below this are critical, even when it is
    #: optional; a vital component's are always critical.
    critical_below_score: int = Field(default=50, ge=0, le=100)
