"""Plain typed objects shared by the pipeline stages (detect → ... → report).

No pydantic here: files are validated at the edge (config/, playbooks/) and converted into these.
Everything that came from a target or a guest is untrusted: strings in ``evidence`` are capped by the
stage that produced them and escaped by the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class IssueKind(StrEnum):
    UNIT_FAILED = "unit_failed"          # unit in failed state, or restarting in a loop
    UNIT_INACTIVE = "unit_inactive"      # enabled unit that is not running
    CONFIG_INVALID = "config_invalid"    # the component's config test fails
    HTTP_DOWN = "http_down"              # an endpoint does not answer as expected
    DISK_FULL = "disk_full"              # block usage at/over threshold
    INODES_FULL = "inodes_full"          # inode usage at/over threshold
    LOG_CORRUPT = "log_corrupt"          # a watched JSON-lines file has lines that do not parse
    BOOT_CONFIG = "boot_config"          # the next boot would fail or hang (fstab: a missing device)
    PACKAGE_BROKEN = "package_broken"    # a package half-configured, or its files missing or changed
    PERMISSIONS = "permissions"          # a path's mode or owner breaks its service (or the host's security)
    PATH_MISSING = "path_missing"        # a directory a unit needs is gone, or a config symlink dangles
    PORT_DOWN = "port_down"              # a TCP port the component listened on is no longer listened on
    SYSTEM_DEGRADED = "system_degraded"  # systemd reports degraded/maintenance: units failed at boot
    MEMORY_PRESSURE = "memory_pressure"  # memory stalls or OOM kills
    KERNEL_FAULT = "kernel_fault"        # the kernel is tainted by an oops/BUG, or logged a panic


class SessionStatus(StrEnum):
    HEALTHY = "healthy"
    REPAIRED = "repaired"
    NOT_REPAIRED = "not_repaired"
    NOT_REPRODUCED = "not_reproduced"
    ERROR = "error"
    #: A verified fix is applied and waits for its reboot (window/prompt policy); verified after boot.
    PENDING_REBOOT = "pending_reboot"
    #: The run was killed (its process or the host died); closed by the next start
    #: (:mod:`orchestrator.pipeline.resume`), never an outcome a run returns itself.
    INTERRUPTED = "interrupted"


#: Documented exit codes of `vmrepair run` (README): 0 for healthy and repaired.
RUN_EXIT_CODES: dict[SessionStatus, int] = {
    SessionStatus.HEALTHY: 0,
    SessionStatus.REPAIRED: 0,
    SessionStatus.NOT_REPAIRED: 10,
    SessionStatus.NOT_REPRODUCED: 11,
    SessionStatus.ERROR: 12,
    SessionStatus.PENDING_REBOOT: 20,
    # What the next start records for a run it found killed; no `run` exits with it (a killed process
    # has no exit code of ours). Its own code, so a session's exit_code still tells every status apart.
    SessionStatus.INTERRUPTED: 21,
}


@dataclass(frozen=True)
class ProbeResult:
    """One observation. ``probe`` names the probe so the same check can be re-run elsewhere."""

    probe: str
    component: str
    ok: bool
    kind: IssueKind
    severity: Severity
    subject: str
    summary: str
    evidence: dict[str, str] = field(default_factory=dict)
    #: True when the probe could not run at all (e.g. no systemd): neither pass nor fail.
    is_unavailable: bool = False


#: Evidence key of a finding to report, never to repair on its own (its value says why): a drift that
#: may be intended. Such an issue forms a group of its own, so it neither blocks nor is hidden by the
#: repair of the component's other issues (:func:`orchestrator.pipeline.triage.is_report_only`).
REPORT_ONLY = "report_only"


@dataclass(frozen=True)
class Issue:
    """A failed probe turned into something to repair."""

    component: str
    kind: IssueKind
    severity: Severity
    subject: str
    summary: str
    probe: str
    evidence: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Stable identity of *what* is broken (not of the observed text): component, kind, subject."""
        raw = f"{self.component}\0{self.kind}\0{self.subject}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def id(self) -> str:
        return f"{self.component}:{self.kind}:{self.fingerprint[:8]}"

    @classmethod
    def from_result(cls, result: ProbeResult) -> Issue:
        return cls(result.component, result.kind, result.severity, result.subject, result.summary,
                   result.probe, dict(result.evidence))

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "component": self.component, "kind": str(self.kind),
            "severity": str(self.severity), "subject": self.subject, "summary": self.summary,
            "probe": self.probe, "evidence": self.evidence, "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class HttpCheck:
    url: str
    expect_status: int = 200


@dataclass(frozen=True)
class Component:
    """A watched part of the host: what to probe, capture, baseline and validate."""

    name: str
    vital: bool = True
    units: tuple[str, ...] = ()
    #: Config files/dirs captured, baselined and allowed in fix packages (e.g. /etc/nginx).
    config_paths: tuple[str, ...] = ()
    #: Unit files and drop-in dirs (e.g. /etc/systemd/system/sampleapp.service.d).
    unit_paths: tuple[str, ...] = ()
    #: Data the component needs (e.g. /var/lib/sampleapp); captured with a size cap.
    data_paths: tuple[str, ...] = ()
    config_test: tuple[str, ...] = ()
    http: tuple[HttpCheck, ...] = ()
    jsonl_logs: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    #: Log files/dirs a disk-space repair may rotate, compress or truncate (never other data).
    log_paths: tuple[str, ...] = ()
    #: fstab files whose entries must not stop the next boot (normally /etc/fstab); each is probed.
    fstab: tuple[str, ...] = ()
    #: Where the definition came from: ``discovered`` on the target, ``configured`` in ``watch:``,
    #: ``baseline`` (recorded healthy, no longer discovered) or ``builtin`` (host-wide, e.g. boot).
    origin: str = "configured"
    #: ``User=``/``Group=`` of the main unit (empty: root, or not known).
    user: str = ""
    group: str = ""
    #: Directories the unit's user must be able to write: ``StateDirectory=``, ``LogsDirectory=``,
    #: ``ReadWritePaths=`` (absolute). Probed for existence and writability, never captured whole.
    writable_paths: tuple[str, ...] = ()
    #: TCP ports the component's processes listened on when it was discovered.
    ports: tuple[int, ...] = ()
    #: Socket units that activate the component: probed like units, never restarted (restarting a
    #: socket while its service runs fails and leaves the socket inactive).
    sockets: tuple[str, ...] = ()
    #: A vital component that boot diagnostics cannot restore may be replaced by a stub unit (its
    #: dependants start, it does not) only when its configuration says so: a stub hides an outage, which
    #: is right for a component others merely need to be "started", wrong for one that serves.
    stub: bool = False

    @property
    def log_dirs(self) -> tuple[str, ...]:
        """The component's own log directories: its log paths strictly below /var/log (never /var/log
        itself, which every service shares). A service that cannot open its log there fails to start
        (nginx's error log), so they are state a repair may recreate, like its writable paths."""
        return tuple(p for p in self.log_paths if p.startswith("/var/log/"))

    @property
    def all_paths(self) -> tuple[str, ...]:
        return self.config_paths + self.unit_paths + self.data_paths
