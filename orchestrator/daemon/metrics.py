"""The daemon's own metrics, kept in memory since it started (jobs, restarts, readiness), as a
prometheus_client collector, and the registry /metrics serves: these plus the persisted ones
(:mod:`orchestrator.metrics.collector`).

These counters start from zero at each daemon start (Prometheus' ``rate()`` and ``increase()`` take
that as a counter reset); what must survive a restart, and what a CLI run reports too, is read from
disk by the persisted collector. Only the persisted metrics go to the textfile (see
:mod:`orchestrator.metrics`). Label values are escaped by prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from orchestrator.daemon.state import DaemonState
from orchestrator.metrics.collector import PersistedCollector, new_registry

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
Family = CounterMetricFamily | GaugeMetricFamily


def process_rss_bytes(status: Path = Path("/proc/self/status")) -> int | None:
    """Resident set size of this process (VmRSS), or None where /proc does not say."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _by(family: Family, counts: Mapping[str, float]) -> Family:
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


def _one(family: Family, value: float) -> Family:
    family.add_metric([], value)
    return family


class DaemonCollector:
    """The metric names the daemon has exported since its first release; dashboards depend on them."""

    def __init__(self, state: DaemonState, rss: Callable[[], int | None] = process_rss_bytes) -> None:
        self._state = state
        self._rss = rss

    def collect(self) -> Iterator[Family]:
        snap = self._state.metrics()
        yield _one(GaugeMetricFamily("vmrepair_daemon_ready", "1 once start-up recovery has finished"),
                   1 if snap.is_ready else 0)
        yield _one(GaugeMetricFamily("vmrepair_daemon_start_time_seconds",
                                     "When the daemon started (Unix time)"), round(snap.started_at, 3))
        yield _one(CounterMetricFamily("vmrepair_detection_runs", "Detections run against the target"),
                   snap.detection_runs)
        yield _by(GaugeMetricFamily("vmrepair_issues", "Issues found by the last detection, by component",
                                    labels=["component"]), snap.issues_by_component)
        # Repairs by outcome across restarts and CLI runs are vmrepair_repairs_total (persisted); this
        # one counts what this daemon started, "deferred" (the state lock was held) included.
        yield _by(CounterMetricFamily("vmrepair_daemon_repairs", "Repair runs started by this daemon since "
                                      "it started, by outcome", labels=["outcome"]), snap.repairs_by_outcome)
        yield _by(CounterMetricFamily("vmrepair_restarts", "Units restarted in place, by component",
                                      labels=["component"]), snap.restarts_by_component)
        yield _by(CounterMetricFamily("vmrepair_quarantines", "Components quarantined, by component",
                                      labels=["component"]), snap.quarantines_by_component)
        yield _by(CounterMetricFamily("vmrepair_errors", "Errors written to the audit log, by component",
                                      labels=["component"]), snap.errors_by_component)
        yield _one(CounterMetricFamily("vmrepair_baselines", "Baselines recorded by the daemon"),
                   snap.baselines)
        runs = CounterMetricFamily("vmrepair_job_runs", "Runs of each daemon job, by result",
                                   labels=["job", "result"])
        for (job, result), n in sorted(snap.job_runs.items()):
            runs.add_metric([job, result], n)
        yield runs
        yield _by(GaugeMetricFamily("vmrepair_job_last_run_timestamp_seconds", "When each job last finished",
                                    labels=["job"]), {k: round(v, 3) for k, v in snap.last_run.items()})
        yield _by(GaugeMetricFamily("vmrepair_job_last_success_timestamp_seconds",
                                    "When each job last finished without error", labels=["job"]),
                  {k: round(v, 3) for k, v in snap.last_success.items()})
        rss = self._rss()
        if rss is not None:
            yield _one(GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes"),
                       rss)


def daemon_registry(state: DaemonState, persisted: PersistedCollector,
                    rss: Callable[[], int | None] = process_rss_bytes) -> CollectorRegistry:
    """What the daemon serves on /metrics (socket and TCP port): its own and the persisted metrics."""
    return new_registry(persisted, DaemonCollector(state, rss))
