"""``disk:<mount>`` and ``inodes:<mount>`` probes: usage of a mount, through the agent.

Usage at or over the critical threshold is critical, at or over the warning threshold a warning (the
comparison is ``>=`` on the percentage df would print). A critical *block* usage also lists the
largest files under every component's ``log_paths`` as evidence: those are the only files a disk
repair may rotate or truncate. Inode exhaustion comes from many small files, so big files would only
mislead there and are not listed.

The results belong to the pseudo-component ``host`` (:data:`~orchestrator.detect.common.HOST_COMPONENT`).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.agent.api import AgentApi, AgentRead, DiskUsage
from orchestrator.components.config import Thresholds
from orchestrator.detect.common import HOST_COMPONENT, ProbeId, cap_evidence
from orchestrator.errors import AgentError
from orchestrator.model import IssueKind, ProbeResult, Severity

DISK_PREFIX = "disk:"
INODES_PREFIX = "inodes:"
BIG_FILES_LIMIT = 5
#: Files smaller than this cannot explain a full disk; the agent skips them.
BIG_FILES_MIN_BYTES = 1024 * 1024


def disk_probe_name(mount: str) -> str:
    return f"{DISK_PREFIX}{mount}"


def inodes_probe_name(mount: str) -> str:
    return f"{INODES_PREFIX}{mount}"


def level(pct: float, warning: float, critical: float) -> Severity | None:
    """Severity of a usage percentage; ``None`` below the warning threshold."""
    if pct >= critical:
        return Severity.CRITICAL
    if pct >= warning:
        return Severity.WARNING
    return None


def first_reads(mount: str) -> tuple[AgentRead, ...]:
    """The agent read the disk and inode probes of ``mount`` start with (batched by the Detector)."""
    return (("disk_usage", {"mount": mount}),)


def _usage(agent: AgentApi, mount: str) -> DiskUsage | str:
    try:
        return agent.disk_usage(mount)
    except AgentError as exc:
        return f"the agent could not measure {mount}: {exc.message}"


def probe_disk(
    agent: AgentApi, mount: str, thresholds: Thresholds, log_roots: Sequence[str]
) -> ProbeResult:
    """Block usage of ``mount``.

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    pid = ProbeId(disk_probe_name(mount), HOST_COMPONENT, IssueKind.DISK_FULL, mount)
    usage = _usage(agent, mount)
    if isinstance(usage, str):
        return pid.unavailable(usage)
    evidence = {"used_pct": f"{usage.used_pct:.1f}", "size_bytes": str(usage.size_bytes),
                "used_bytes": str(usage.used_bytes), "avail_bytes": str(usage.avail_bytes),
                "warning_pct": f"{thresholds.disk_warning_pct:g}",
                "critical_pct": f"{thresholds.disk_critical_pct:g}"}
    severity = level(usage.used_pct, thresholds.disk_warning_pct, thresholds.disk_critical_pct)
    summary = f"{mount} is {usage.used_pct:.1f}% full"
    if severity is None:
        return pid.passed(summary, evidence)
    if severity is Severity.CRITICAL and log_roots:
        evidence.update(_big_files(agent, log_roots))
    return pid.failed(severity, f"{summary} ({usage.avail_bytes} bytes free)", evidence)


def probe_inodes(agent: AgentApi, mount: str, thresholds: Thresholds) -> ProbeResult:
    """Inode usage of ``mount``.

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    pid = ProbeId(inodes_probe_name(mount), HOST_COMPONENT, IssueKind.INODES_FULL, mount)
    usage = _usage(agent, mount)
    if isinstance(usage, str):
        return pid.unavailable(usage)
    evidence = {"inodes_pct": f"{usage.inodes_pct:.1f}", "inodes_total": str(usage.inodes_total),
                "inodes_used": str(usage.inodes_used),
                "warning_pct": f"{thresholds.inode_warning_pct:g}",
                "critical_pct": f"{thresholds.inode_critical_pct:g}"}
    severity = level(usage.inodes_pct, thresholds.inode_warning_pct, thresholds.inode_critical_pct)
    summary = f"{mount} uses {usage.inodes_pct:.1f}% of its inodes"
    if severity is None:
        return pid.passed(summary, evidence)
    return pid.failed(severity, summary, evidence)


def _big_files(agent: AgentApi, roots: Sequence[str]) -> dict[str, str]:
    try:
        files = agent.big_files(list(roots), min_bytes=BIG_FILES_MIN_BYTES, limit=BIG_FILES_LIMIT)
    except AgentError as exc:
        return {"big_files_error": cap_evidence(exc.message, 1024)}
    lines = [f"{f.size}\t{f.path}{'  (open by a writer)' if f.is_open_by_writer else ''}"
             for f in sorted(files, key=lambda f: f.size, reverse=True)[:BIG_FILES_LIMIT]]
    return {"big_files": cap_evidence("\n".join(lines))}
