"""The prometheus_client collector of vmrepair's persisted metrics, and the registry that holds it.

Every value is read from disk when Prometheus asks (no counters kept in memory), so the daemon's
``/metrics``, its textfile and the textfile a CLI run writes agree. A source that cannot be read
(corrupt state store, unlistable sessions directory) is left out and reported by
``vmrepair_metrics_source_ok{source} 0``, so one bad file never hides the rest, and an exporter
failure never fails a command.

Its own :class:`~prometheus_client.CollectorRegistry`, never the library's global one: nothing else
in the process (or in a test) can register into it, and every registry built here is independent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from orchestrator.config.settings import Settings
from orchestrator.errors import VmRepairError
from orchestrator.metrics.detections import load_detections
from orchestrator.metrics.quarantined import load_quarantined
from orchestrator.metrics.sessions import SessionScanner, SessionSummary
from orchestrator.model import SessionStatus, Severity
from orchestrator.state.db import open_state

log = logging.getLogger(__name__)

#: Time from detection to verified repair: seconds (a restart in place) to hours (a fix that waits
#: for its reboot window), hence the wide buckets.
REPAIR_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0)
Metric = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily


@dataclass(frozen=True)
class StatePaths:
    """Where the persisted state is; from :class:`Settings`, or a temporary directory in tests."""

    state_db: Path
    sessions_dir: Path
    state_dir: Path
    quarantine_dir: Path

    @classmethod
    def of(cls, settings: Settings) -> StatePaths:
        return cls(settings.state_db, settings.sessions_dir, settings.state_dir, settings.quarantine_dir)


class PersistedCollector:
    """Yields vmrepair's persisted metrics at every collection (see the README for the list)."""

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._sessions = SessionScanner(paths.sessions_dir)

    def collect(self) -> Iterator[Metric]:
        sources = GaugeMetricFamily("vmrepair_metrics_source_ok",
                                    "1 when the source could be read at this collection, 0 when not",
                                    labels=["source"])
        for name, produce in (("sessions", self._session_metrics), ("state_db", self._outcome_metrics),
                              ("detections", self._detection_metrics),
                              ("quarantine", self._quarantine_metrics)):
            families, ok = _guarded(name, produce)
            yield from families
            sources.add_metric([name], 1 if ok else 0)
        yield sources

    # -- sessions: repairs, time to repair, VM readiness -----------------------------------------
    def _session_metrics(self) -> list[Metric]:
        return session_families(self._sessions.scan())

    # -- state store: strategy outcomes ------------------------------------------------------
    def _outcome_metrics(self) -> list[Metric]:
        outcomes = CounterMetricFamily(
            "vmrepair_strategy_outcomes", "Strategy validations in a troubleshooting VM (stage vm), "
            "verifications on a target after applying (stage target) and after its reboot (stage reboot), "
            "by result", labels=["strategy", "stage", "result"])
        with open_state(self._paths.state_db, readonly=True, check=False) as db:
            rows = db.query("SELECT strategy, stage, succeeded, COUNT(*) FROM outcomes "
                            "GROUP BY strategy, stage, succeeded ORDER BY strategy, stage, succeeded")
        for strategy, stage, succeeded, count in rows:
            outcomes.add_metric([str(strategy), str(stage), "ok" if succeeded else "failed"], int(count))
        return [outcomes]

    # -- detection records: open issues, detection age ---------------------------------------------
    def _detection_metrics(self) -> list[Metric]:
        records, problems = load_detections(self._paths.state_dir)
        for problem in problems:
            log.warning("detection record skipped: %s", problem)
        last = GaugeMetricFamily("vmrepair_last_detection_timestamp_seconds",
                                 "When the last detection of the target finished (Unix time)",
                                 labels=["target"])
        issues = GaugeMetricFamily("vmrepair_open_issues", "Issues the last detection of the target found "
                                   "and no repair has cleared since, by severity",
                                   labels=["target", "severity"])
        oldest = GaugeMetricFamily("vmrepair_open_issues_oldest_timestamp_seconds",
                                   "When the longest-open issue of this severity was first seen (Unix time)",
                                   labels=["target", "severity"])
        for record in sorted(records, key=lambda r: r.target):
            last.add_metric([record.target], record.at)
            for severity in Severity:
                of = [i for i in record.issues if i.severity == str(severity)]
                issues.add_metric([record.target, str(severity)], len(of))
                if of:
                    oldest.add_metric([record.target, str(severity)], min(i.first_seen for i in of))
        return [last, issues, oldest]

    # -- quarantine directory ----------------------------------------------------------------------
    def _quarantine_metrics(self) -> list[Metric]:
        found, problems = load_quarantined(self._paths.quarantine_dir)
        for problem in problems:
            log.warning("quarantine manifest skipped: %s", problem)
        count = GaugeMetricFamily("vmrepair_quarantined_components",
                                  "Components of this host in quarantine (units stopped, files moved aside)")
        count.add_metric([], len(found))
        since = GaugeMetricFamily("vmrepair_quarantined_since_timestamp_seconds",
                                  "When the component was quarantined (Unix time)", labels=["component"])
        for item in found:
            if item.since is not None:
                since.add_metric([item.component], item.since)
        return [count, since]


def session_families(summary: SessionSummary) -> list[Metric]:
    repairs = CounterMetricFamily("vmrepair_repairs", "Finished repair runs (`vmrepair run` and the "
                                  "daemon's; dry runs excluded), by outcome", labels=["outcome"])
    runs = [f for f in summary.facts if not f.is_dry_run]
    counts = Counter(f.outcome for f in runs)
    for outcome in sorted({*map(str, SessionStatus), *counts}):
        repairs.add_metric([outcome], counts[outcome])
    latest = GaugeMetricFamily("vmrepair_last_repair_outcome", "1 for the outcome of the target's latest "
                               "finished repair run", labels=["target", "outcome"])
    latest_at = GaugeMetricFamily("vmrepair_last_repair_timestamp_seconds",
                                  "When the target's latest repair run finished (Unix time)",
                                  labels=["target"])
    seen: set[str] = set()
    for fact in runs:  # newest first: the first of each target is its latest
        if fact.target and fact.target not in seen and fact.finished_at is not None:
            seen.add(fact.target)
            latest.add_metric([fact.target, fact.outcome], 1)
            latest_at.add_metric([fact.target], fact.finished_at)
    durations = [f.repair_seconds for f in runs if f.repair_seconds is not None]
    mttr = HistogramMetricFamily("vmrepair_time_to_repair_seconds",
                                 "Seconds from the detection of a run to its verified repair")
    buckets = [(str(bound), float(sum(1 for d in durations if d <= bound)))
               for bound in REPAIR_BUCKETS]
    mttr.add_metric([], [*buckets, ("+Inf", float(len(durations)))], sum_value=sum(durations))
    families: list[Metric] = [repairs, latest, latest_at, mttr]
    ready = summary.readiness
    if ready is not None:
        ok = GaugeMetricFamily("vmrepair_vm_last_ready_ok", "1 when the latest troubleshooting VM became "
                               "ready, 0 when it never did")
        ok.add_metric([], 1 if ready.is_ok else 0)
        at = GaugeMetricFamily("vmrepair_vm_last_boot_timestamp_seconds",
                               "When the latest troubleshooting VM became ready or failed to (Unix time)")
        at.add_metric([], ready.at)
        families += [ok, at]
        if ready.seconds is not None:
            took = GaugeMetricFamily("vmrepair_vm_ready_seconds",
                                     "Seconds the latest troubleshooting VM took to become ready")
            took.add_metric([], ready.seconds)
            families.append(took)
    return families


def _guarded(name: str, produce: Callable[[], list[Metric]]) -> tuple[list[Metric], bool]:
    """The families ``produce`` gives, or none (and False) when its source cannot be read."""
    try:
        return produce(), True
    except VmRepairError as exc:
        log.warning("metrics: %s skipped: %s", name, exc.message)
    except OSError as exc:
        log.warning("metrics: %s skipped: %s", name, exc.strerror or exc)
    return [], False


def new_registry(*collectors: Collector) -> CollectorRegistry:
    """A fresh registry (never the library's global one) holding ``collectors``."""
    # auto_describe=False: describing would run a full collection at registration (reading every
    # source once more for nothing).
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def persisted_registry(settings: Settings) -> CollectorRegistry:
    """The registry of the textfile: the persisted metrics of ``settings``' state dir."""
    return new_registry(PersistedCollector(StatePaths.of(settings)))
