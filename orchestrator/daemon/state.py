"""What the daemon knows right now, shared by its job thread and the API threads.

Every read and write holds one lock and every read returns a copy, so an API request never sees a
detection half-applied. Nothing here is persisted: the durable record is the audit log and the
session store; after a restart the first detection rebuilds the current issues.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.daemon.mode import ModeTracker, NotWorking
from orchestrator.model import Issue, Severity
from orchestrator.timestamps import epoch_timestamp

#: States an issue can be in. ``pending``: waiting for an operator (policy ``ask``); ``recorded``:
#: noted only (``detect-only``, or repairs held back after a failed start-up recovery); ``repairing``,
#: then the session's status (``repaired``, ``not_repaired``, ``error`` ...) under ``auto-repair``.
PENDING, RECORDED, REPAIRING = "pending", "recorded", "repairing"


@dataclass(frozen=True)
class TrackedIssue:
    issue: Issue
    state: str
    first_seen: float
    last_seen: float
    session: str | None = None
    #: When the issue entered ``state``.
    state_since: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {**self.issue.as_dict(), "state": self.state, "first_seen": _iso(self.first_seen),
                "last_seen": _iso(self.last_seen), "state_since": _iso(self.state_since),
                "session": self.session}


@dataclass(frozen=True)
class MetricsSnapshot:
    """Counters and gauges at one moment, for /metrics."""

    started_at: float
    is_ready: bool
    detection_runs: int
    issues_by_component: dict[str, int]
    repairs_by_outcome: dict[str, int]
    restarts_by_component: dict[str, int]
    quarantines_by_component: dict[str, int]
    errors_by_component: dict[str, int]
    job_runs: dict[tuple[str, str], int]
    last_run: dict[str, float]
    last_success: dict[str, float]
    baselines: int


@dataclass
class _Counters:
    detection_runs: int = 0
    baselines: int = 0
    repairs: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    quarantines: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    job_runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_run: dict[str, float] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)


class DaemonState:
    def __init__(self, *, target: str, policy: str, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        #: Wall clock of every timestamp here; jobs comparing against them use it too.
        self.clock = clock
        self.target = target
        self.policy = policy
        self.started_at = clock()
        self._ready = False
        self._ready_detail = "start-up recovery has not finished"
        self._repairs_allowed = True
        self._startup: dict[str, dict[str, Any]] = {}
        self._last_detection: dict[str, Any] | None = None
        self._issues: dict[str, TrackedIssue] = {}
        #: Severity the health monitor escalated a component with (its dependency verdict).
        self._escalated: dict[str, Severity] = {}
        self._mode = ModeTracker()
        self._n = _Counters()

    # -- start-up ---------------------------------------------------------------------------------
    def record_startup(self, hook: str, report: Mapping[str, Any]) -> None:
        with self._lock:
            self._startup[hook] = dict(report)

    def record_boot_mode(self, optional: Iterable[str], not_working: Iterable[NotWorking]) -> None:
        """What boot diagnostics found: the optional components, and those that do not work."""
        with self._lock:
            self._mode.boot(optional, not_working)

    def set_ready(self, detail: str, *, repairs_allowed: bool = True) -> None:
        with self._lock:
            self._ready, self._ready_detail = True, detail
            self._repairs_allowed = repairs_allowed

    def set_startup_failed(self, detail: str) -> None:
        """Start-up recovery failed: not ready, and no repairs until a restart recovers cleanly."""
        with self._lock:
            self._ready, self._ready_detail, self._repairs_allowed = False, detail, False

    @property
    def repairs_allowed(self) -> bool:
        with self._lock:
            return self._repairs_allowed

    # -- detection and issues -----------------------------------------------------------------
    def record_detection(self, issues: Iterable[Issue], *, duration_s: float, probes: int,
                         unavailable: Iterable[str], new_state: str) -> tuple[list[Issue], list[Issue]]:
        """Replace the current issues with ``issues``; returns (new ones, cleared ones).

        Issues seen before keep their state and first-seen time; new ones start in ``new_state``.
        Issues of a component the health monitor escalated carry the escalation's severity
        (:meth:`escalated`) until a detection finds none of them.
        """
        now = self.clock()
        with self._lock:
            found = {i.id: replace(i, severity=self._escalated[i.component])
                     if i.component in self._escalated else i for i in issues}
            components = {i.component for i in found.values()}
            self._escalated = {c: s for c, s in self._escalated.items() if c in components}
            self._mode.detected((i.component, i.summary) for i in found.values())
            old = self._issues
            self._issues = {
                key: replace(old[key], issue=issue, last_seen=now) if key in old
                else TrackedIssue(issue, new_state, now, now, state_since=now)
                for key, issue in found.items()
            }
            self._n.detection_runs += 1
            self._last_detection = {"at": _iso(now), "duration_s": round(duration_s, 3),
                                    "probes": probes, "issues": len(found),
                                    "unavailable": sorted(unavailable)}
        return ([i for k, i in found.items() if k not in old],
                [t.issue for k, t in old.items() if k not in found])

    def escalated(self, component: str, severity: Severity) -> None:
        """The health monitor escalated ``component``; its dependency verdict says how severe that is.

        Detected issues of the component take this severity, not their probe's: the probe knows the
        symptom (an endpoint is down), the verdict what it stands on (a vital component, a broken
        dependency)."""
        with self._lock:
            self._escalated[component] = severity

    def mark_issues(self, ids: Iterable[str], state: str, *, session: str | None = None) -> None:
        now = self.clock()
        with self._lock:
            for key in ids:
                if key in self._issues:
                    self._issues[key] = replace(self._issues[key], state=state, session=session,
                                                state_since=now)

    def tracked(self) -> list[TrackedIssue]:
        with self._lock:
            return list(self._issues.values())

    def detection_runs(self) -> int:
        with self._lock:
            return self._n.detection_runs

    def has_critical_issues(self) -> bool:
        with self._lock:
            return any(t.issue.severity is Severity.CRITICAL for t in self._issues.values())

    def last_detection_at(self) -> str | None:
        with self._lock:
            return None if self._last_detection is None else str(self._last_detection["at"])

    # -- outcomes (fed by the jobs and the audit tap) -------------------------------------------
    def record_repair(self, outcome: str) -> None:
        with self._lock:
            self._n.repairs[outcome] += 1

    def record_baseline(self) -> None:
        with self._lock:
            self._n.baselines += 1

    def record_audit(self, event: str, component: str, details: Mapping[str, Any]) -> None:
        with self._lock:
            if event == "recovery" and details.get("action") == "restart":
                self._n.restarts[component] += 1
            elif event == "quarantine":
                self._n.quarantines[component] += 1
            elif event == "error":
                self._n.errors[component] += 1

    def job_finished(self, job: str, ok: bool, at: float, _duration_s: float) -> None:
        with self._lock:
            self._n.job_runs[(job, "ok" if ok else "failed")] += 1
            self._n.last_run[job] = at
            if ok:
                self._n.last_success[job] = at

    # -- views for the API ----------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        return {"status": "alive", "started_at": _iso(self.started_at),
                "uptime_s": round(self.clock() - self.started_at, 1)}

    def readiness(self) -> dict[str, object]:
        with self._lock:
            return {"ready": self._ready, "detail": self._ready_detail,
                    "repairs_allowed": self._repairs_allowed, "policy": self.policy,
                    "target": self.target, **self._mode.view(), "startup": dict(self._startup)}

    def issues_view(self) -> dict[str, object]:
        with self._lock:
            return {"target": self.target, "policy": self.policy,
                    "last_detection": None if self._last_detection is None else dict(self._last_detection),
                    "issues": [t.as_dict() for t in self._issues.values()]}

    def metrics(self) -> MetricsSnapshot:
        with self._lock:
            n = self._n
            by_component = Counter(t.issue.component for t in self._issues.values())
            return MetricsSnapshot(
                started_at=self.started_at, is_ready=self._ready, detection_runs=n.detection_runs,
                issues_by_component=dict(by_component), repairs_by_outcome=dict(n.repairs),
                restarts_by_component=dict(n.restarts), quarantines_by_component=dict(n.quarantines),
                errors_by_component=dict(n.errors), job_runs=dict(n.job_runs),
                last_run=dict(n.last_run), last_success=dict(n.last_success), baselines=n.baselines)


def _iso(moment: float) -> str:
    return epoch_timestamp(moment)
