"""/metrics in the Prometheus text exposition format (version 0.0.4), rendered by hand.

No client library: the format is a few lines of text per metric, and the daemon ships to hosts (and
guests) from a copied tarball. Label values come from the watch config and from outcomes; they are
escaped anyway (backslash, double quote, newline) so no value can forge a sample line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.daemon.state import MetricsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def process_rss_bytes(status: Path = Path("/proc/self/status")) -> int | None:
    """Resident set size of this process (VmRSS), or None where /proc does not say."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = repr(float(value)) if not float(value).is_integer() else str(int(value))
            self.lines.append(f"{name}{_labels(labels)} {number}")


def _by(label: str, counts: Mapping[str, float]) -> list[tuple[Mapping[str, str], float]]:
    return [({label: key}, value) for key, value in sorted(counts.items())]


def render_metrics(snap: MetricsSnapshot, *, rss_bytes: int | None) -> str:
    w = _Writer()
    w.metric("vmrepair_daemon_ready", "gauge", "1 once start-up recovery has finished",
             [({}, 1 if snap.is_ready else 0)])
    w.metric("vmrepair_daemon_start_time_seconds", "gauge", "When the daemon started (Unix time)",
             [({}, round(snap.started_at, 3))])
    w.metric("vmrepair_detection_runs_total", "counter", "Detections run against the target",
             [({}, snap.detection_runs)])
    w.metric("vmrepair_issues", "gauge", "Issues found by the last detection, by component",
             _by("component", snap.issues_by_component))
    w.metric("vmrepair_repairs_total", "counter", "Repair runs started by the daemon, by outcome",
             _by("outcome", snap.repairs_by_outcome))
    w.metric("vmrepair_restarts_total", "counter", "Units restarted in place, by component",
             _by("component", snap.restarts_by_component))
    w.metric("vmrepair_quarantines_total", "counter", "Components quarantined, by component",
             _by("component", snap.quarantines_by_component))
    w.metric("vmrepair_errors_total", "counter", "Errors written to the audit log, by component",
             _by("component", snap.errors_by_component))
    w.metric("vmrepair_baselines_total", "counter", "Baselines recorded by the daemon",
             [({}, snap.baselines)])
    w.metric("vmrepair_job_runs_total", "counter", "Runs of each daemon job, by result",
             [({"job": job, "result": result}, n) for (job, result), n in sorted(snap.job_runs.items())])
    w.metric("vmrepair_job_last_run_timestamp_seconds", "gauge", "When each job last finished",
             _by("job", {k: round(v, 3) for k, v in snap.last_run.items()}))
    w.metric("vmrepair_job_last_success_timestamp_seconds", "gauge",
             "When each job last finished without error",
             _by("job", {k: round(v, 3) for k, v in snap.last_success.items()}))
    if rss_bytes is not None:
        w.metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
                 [({}, rss_bytes)])
    return "\n".join(w.lines) + "\n"
