"""The daemon's other jobs: recording baselines of a healthy target, polling the health monitor
(which restarts and escalates), quarantining a component whose repairs do not hold, and rewriting
the metrics textfile.

All are :class:`~orchestrator.daemon.scheduler.Job` s; what they reach the target with is injected,
so they are tested without a target and wired to the real code in :mod:`orchestrator.daemon.wiring`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.audit.sink import AuditSink
from orchestrator.daemon.quarantine_rules import FailedRepairs, quarantine_reasons
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import VmRepairError
from orchestrator.model import Severity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineRecord:
    """What the daemon keeps of one recorded baseline."""

    name: str
    directory: str
    components: tuple[str, ...]


class BaselineJob:
    """Records a baseline after a fresh detection found no critical issue, at most once per period.

    A baseline holds every watched component of the target (one ``files.tar``, one ``latest``
    pointer), so it is recorded only when no component has a critical issue, the rule `vmrepair
    baseline` applies too: recording while one component is broken would make its broken files the
    "known-good" copy a later repair restores. Checks run every ``interval_s`` (the detection
    interval); ``period_s`` bounds how often a baseline is actually recorded, per target and so per
    component.
    """

    name = "baseline"

    def __init__(
        self,
        *,
        interval_s: float,
        period_s: float,
        target: str,
        record: Callable[[], BaselineRecord],
        last_recorded_at: Callable[[], float | None],
        state: DaemonState,
        audit: AuditSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self._period_s = period_s
        self._target = target
        self._record = record
        self._last_recorded_at = last_recorded_at
        self._state = state
        self._audit = audit
        self._clock = clock
        self._seen_runs = 0

    def run(self) -> None:
        """Record a baseline if one is due and the last detection (newer than our last look) allows.

        Raises:
            StateError: the baseline cannot be written; AgentError, TransportError: packing failed.
        """
        runs = self._state.detection_runs()
        fresh, self._seen_runs = runs > self._seen_runs, runs
        if not fresh or self._state.has_critical_issues():
            return
        last = self._last_recorded_at()
        if last is not None and self._clock() - last < self._period_s:
            return
        recorded = self._record()
        self._state.record_baseline()
        self._audit.record("baseline", component="daemon", status="recorded",
                           details={"target": self._target, "baseline": recorded.name,
                                    "directory": recorded.directory,
                                    "components": list(recorded.components)})
        log.info("baseline %s of %s recorded", recorded.name, self._target)


class HealthPoller(Protocol):
    """What the job needs of :class:`orchestrator.health.HealthMonitor`."""

    def poll_once(self) -> Sequence[object]:
        """Raises: TransportError (target unreachable), AuditError."""
        ...

    def status(self) -> Mapping[str, Mapping[str, object]]: ...


class HealthJob:
    """One poll of the health monitor (which restarts and escalates by itself), then quarantine.

    A component is quarantined through ``quarantine(component, reason)`` when a rule of
    :mod:`orchestrator.daemon.quarantine_rules` says so (escalations, a unit's restart loop, failed
    repair runs in ``failed_repairs``), once per daemon run: a refusal (a unit shared with another
    component, the SSH server) would be refused again on every poll. A component ``is_vital`` says is
    vital is never quarantined: it is audited once as spared instead.
    """

    name = "health"

    def __init__(self, *, interval_s: float, monitor: HealthPoller,
                 quarantine: Callable[[str, str], object] | None = None, quarantine_after: int = 2,
                 is_vital: Callable[[str], bool] = lambda _component: True,
                 failed_repairs: FailedRepairs | None = None, failed_repairs_window_s: float = 86400.0,
                 audit: AuditSink | None = None) -> None:
        self.interval_s = interval_s
        self._monitor = monitor
        self._quarantine = quarantine
        self._quarantine_after = quarantine_after
        # Vital unless told otherwise: a caller that forgets to say must not quarantine a vital one.
        self._is_vital = is_vital
        self._failed_repairs = failed_repairs
        self._failed_repairs_window_s = failed_repairs_window_s
        self._audit = audit
        self._quarantined: set[str] = set()
        self._spared: set[str] = set()

    def run(self) -> None:
        """Raises: TransportError (target unreachable), QuarantineError, AuditError."""
        events = self._monitor.poll_once()
        if events:
            log.info("health poll: %d event(s)", len(events))
        if self._quarantine is None:
            return
        failed = self._failed_repairs.over_limit() if self._failed_repairs is not None else {}
        reasons = quarantine_reasons(self._monitor.status(), failed, after_escalations=self._quarantine_after,
                                     failed_repairs_window_s=self._failed_repairs_window_s)
        for component, reason in reasons.items():
            if component in self._quarantined or component in self._spared:
                continue
            if self._is_vital(component):
                self._spare(component, reason)
                continue
            self._quarantined.add(component)
            self._quarantine(component, reason)

    def _spare(self, component: str, reason: str) -> None:
        self._spared.add(component)
        log.warning("%s keeps failing (%s) but is vital: not quarantined", component, reason)
        if self._audit is not None:
            self._audit.record("quarantine", component=component, status="spared_vital", durable=True,
                               details={"reason": reason, "why": "vital components are never quarantined"})


class Escalation:
    """The health monitor's ``escalate(component, reason, severity)``: audit it and run a detection now.

    The detection job then acts by policy (repairs only under ``auto-repair``), so an escalation
    never bypasses the policy, and the repair runs on the job thread, never inside a health poll.
    ``severity`` (the component's dependency verdict) is told to ``on_severity`` before the detection
    runs: the daemon's state gives it to the issues that detection finds of the component.
    """

    def __init__(self, trigger: Callable[[str], None], audit: AuditSink, detect_job: str,
                 on_severity: Callable[[str, Severity], None] | None = None) -> None:
        self._trigger = trigger
        self._audit = audit
        self._detect_job = detect_job
        self._on_severity = on_severity

    def __call__(self, component: str, reason: str, severity: Severity) -> None:
        """Raises: AuditError: the record cannot be written (the detection is triggered anyway)."""
        if self._on_severity is not None:
            self._on_severity(component, severity)
        self._trigger(self._detect_job)
        self._audit.record("escalation", component=component, status="escalated",
                           details={"reason": reason, "severity": str(severity)}, durable=True)


class TextfileJob:
    """Rewrites node_exporter's ``vmrepair.prom`` (:mod:`orchestrator.metrics.textfile`) on its interval.

    Never fails: metrics are a side channel, and a failed job is an audited error, once a minute, for
    something that harms no repair. A write that fails is logged once (and again once it recovered
    and failed anew), not at every run.
    """

    name = "metrics-textfile"

    def __init__(self, *, interval_s: float, write: Callable[[], Path | None]) -> None:
        self.interval_s = interval_s
        self._write = write
        self._is_failing = False

    def run(self) -> None:
        try:
            self._write()
        except VmRepairError as exc:
            if not self._is_failing:
                log.warning("metrics textfile not written (logged once until it works again): %s",
                            exc.message)
            self._is_failing = True
            return
        self._is_failing = False
