"""The health monitor: poll each component's HTTP endpoints on the target, restart, or escalate.

Rules, per component (``settings`` is the ``health:`` section of config.yaml):

1. A poll asks every endpoint of the component (``/health``, ``/ready`` ...) with curl *on the target*
   (:func:`orchestrator.detect.http.probe_http`), each retried with exponential backoff
   (:func:`orchestrator.retry.health_poll_policy`). The poll fails when any endpoint still fails.
2. ``failures_before_restart`` failed polls in a row lead to an action, and the count starts over:
   a component never gets more than one action per that many polls.
3. Before a restart the component's config test runs (``nginx -t``): when it fails, or cannot run, a
   restart cannot help and could take a running service down for good, so the reason is audited and
   the component escalated instead.
4. Then its dependencies are scored (``score``: :func:`orchestrator.bootdiag.dependencies.
   score_on_target`, one ``dpkg --audit`` per decision) and judged (:func:`orchestrator.bootdiag.
   verdict.judge`): when a restart cannot cure them (its own package half-installed, ``pip check``
   failing, a Requires= unit failed or gone: more than ``blind_restart_max_points``), a
   ``dependency_blocked`` event with the score and findings is audited and the component escalated
   instead. The verdict's severity (critical when vital or scoring below ``critical_below_score``)
   goes with every escalation of the component.
5. ``restarts_before_escalation`` restarts within ``restart_window_s`` and the next action is an
   escalation (``escalate(component, reason, severity)``: the daemon hands it to the repair pipeline).
6. After an escalation the component is held for ``restart_window_s``: still failing means neither a
   restart nor another escalation (the pipeline owns it). Passing polls do not clear the restart
   history or the hold, so a flapping service (pass, fail, pass ...) costs at most
   ``restarts_before_escalation`` restarts and one escalation per window.
7. :meth:`HealthMonitor.status` counts a component's escalations until it has passed for a whole
   window: the daemon compares that with ``quarantine_after_escalations`` to quarantine it.

8. Every component with units, HTTP checks or not, has its units' ``NRestarts`` read once per poll
   (:mod:`.unitloops`): ``quarantine_after_unit_restarts`` automatic restarts seen within
   ``restart_window_s``, or systemd's start limit hit, is a restart loop. It is audited once and listed
   by :meth:`HealthMonitor.status` (``restart_loop``) for the daemon's quarantine rules.
9. A restart is bounded (:func:`orchestrator.systemd.bounded_restart`): one still stopping or starting
   after ``restart_deadline_s`` has its unit's processes killed through systemd and counts as a failed
   restart; the poll goes on.

Components without HTTP checks are otherwise left to the detector (config tests, disks). State lives in
memory: a daemon restart starts every count afresh, which errs towards acting later, never sooner.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.bootdiag.dependencies import score_on_target
from orchestrator.bootdiag.result import DependencyScore
from orchestrator.bootdiag.verdict import judge
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import HealthSettings
from orchestrator.detect.config_test import probe_config
from orchestrator.detect.http import probe_http
from orchestrator.errors import VmRepairError
from orchestrator.health.events import HealthEvent, HealthEventKind, audit_event
from orchestrator.health.unitloops import UnitLoopWatch
from orchestrator.model import Component, HttpCheck, ProbeResult, Severity
from orchestrator.retry import health_poll_policy
from orchestrator.systemd import bounded_restart
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Scores a component's dependencies on the target (raises TransportError when it cannot be reached).
Score = Callable[[Transport, Component], DependencyScore]


class Escalate(Protocol):
    """Hands a component to the repair pipeline, with why and how severe its trouble is.

    Raises:
        VmRepairError: the hand-over failed (the monitor audits it and holds the component anyway).
    """

    def __call__(self, component: str, reason: str, severity: Severity, /) -> None: ...


class _Emit(Protocol):
    """Creates, audits and collects one event of the component being polled."""

    def __call__(self, kind: HealthEventKind, summary: str, **details: str) -> None: ...


@dataclass
class _ComponentState:
    consecutive_failures: int = 0
    #: Clock readings of restarts, oldest first; those older than the window are dropped on use.
    restarts: deque[float] = field(default_factory=deque)
    escalated_at: float | None = None
    last_failed_at: float | None = None
    #: Escalations since the component was last stable (a whole window without a failed poll): what
    #: the daemon compares with ``quarantine_after_escalations``. A flapping service never becomes
    #: stable, so its escalations add up across windows.
    escalations: int = 0
    is_failing: bool = False
    is_unavailable: bool = False

    def restarts_within(self, now: float, window: float) -> int:
        while self.restarts and now - self.restarts[0] >= window:
            self.restarts.popleft()
        return len(self.restarts)

    def is_held(self, now: float, window: float) -> bool:
        return self.escalated_at is not None and now - self.escalated_at < window


class HealthMonitor:
    """Polls the endpoints of ``watch``'s components on one target; see the module docstring.

    ``clock`` (monotonic seconds) and ``sleep`` (backoff between retries) are injectable so tests
    never wait; ``score`` (the dependency score before a restart) so they can script it. Not
    thread-safe: one caller polls.
    """

    def __init__(
        self,
        watch: WatchConfig,
        settings: HealthSettings,
        transport: Transport,
        audit: AuditSink,
        escalate: Escalate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        score: Score = score_on_target,
    ) -> None:
        self._settings = settings
        self._score = score
        self._transport = transport
        self._audit = audit
        self._escalate = escalate
        self._clock = clock
        self._sleep = sleep
        # Built once: the policy holds no state between calls, and polls run every few seconds.
        self._poll_policy = health_poll_policy(
            attempts=settings.poll_attempts, backoff_s=settings.poll_backoff_s,
            backoff_max_s=settings.poll_backoff_max_s, sleep=sleep)
        self._http_timeout_s = watch.thresholds.http_timeout_s
        self._components = tuple(c for c in watch.components if c.http)
        self._states = {c.name: _ComponentState() for c in self._components}
        self._loops = UnitLoopWatch([c for c in watch.components if c.units],
                                    restarts_limit=settings.quarantine_after_unit_restarts,
                                    window_s=settings.restart_window_s)

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the components this monitor polls (those with HTTP checks)."""
        return tuple(c.name for c in self._components)

    def poll_once(self) -> list[HealthEvent]:
        """Poll every component once and act on the results; every event is audited as it happens.

        A passing component that was passing before yields no event.

        Raises:
            TransportError: the target cannot be reached (after the poll policy's retries).
            AuditError: the audit trail cannot be written.
        """
        events: list[HealthEvent] = []
        for component in self._components:
            self._poll(component, events)
        now = self._clock()
        for loop in self._loops.observe(self._transport, now):
            event = HealthEvent(loop.component, HealthEventKind.RESTART_LOOP,
                                loop.reason(self._settings.restart_window_s), now,
                                {"unit": loop.unit, "restarts": str(loop.restarts)})
            audit_event(self._audit, event)
            events.append(event)
        return events

    def status(self) -> dict[str, dict[str, object]]:
        """What the monitor holds per component (for the daemon's status answer and quarantine rules):
        ``restart_loop`` is why a unit of the component loops, ``""`` when none does."""
        now, window = self._clock(), self._settings.restart_window_s
        loops = self._loops.looping()
        status: dict[str, dict[str, object]] = {
            name: {"consecutive_failures": s.consecutive_failures, "failing": s.is_failing,
                   "restarts_in_window": s.restarts_within(now, window),
                   "held": s.is_held(now, window), "escalations": s.escalations,
                   "restart_loop": loops.get(name, "")}
            for name, s in self._states.items()}
        for name, reason in loops.items():
            status.setdefault(name, {"restart_loop": reason})
        return status

    # -- one component ------------------------------------------------------------------------------

    def _poll(self, component: Component, events: list[HealthEvent]) -> None:
        state = self._states[component.name]
        results = [self._ask(component, check) for check in component.http]
        now, window = self._clock(), self._settings.restart_window_s

        def emit(kind: HealthEventKind, summary: str, **details: str) -> None:
            event = HealthEvent(component.name, kind, summary, now, details)
            audit_event(self._audit, event)
            events.append(event)

        failing = [r for r in results if not r.ok and not r.is_unavailable]
        if not failing and all(r.is_unavailable for r in results):
            # No answer either way (no curl): counts nothing, said once.
            if not state.is_unavailable:
                emit(HealthEventKind.UNAVAILABLE, "; ".join(r.summary for r in results))
            state.is_unavailable = True
            return
        state.is_unavailable = False
        if not failing:
            if state.is_failing:
                emit(HealthEventKind.RECOVERED, f"{component.name}: every endpoint answers again")
            state.is_failing, state.consecutive_failures = False, 0
            if state.last_failed_at is None or now - state.last_failed_at >= window:
                state.escalations = 0
            return
        state.is_failing, state.last_failed_at = True, now
        state.consecutive_failures += 1
        threshold = self._settings.failures_before_restart
        emit(HealthEventKind.FAILED, "; ".join(r.summary for r in failing),
             probes=",".join(r.probe for r in failing),
             consecutive=f"{state.consecutive_failures}/{threshold}")
        if state.consecutive_failures < threshold:
            return
        state.consecutive_failures = 0
        if state.is_held(now, window):
            since = now - (state.escalated_at or now)
            emit(HealthEventKind.HELD, f"{component.name} still failing; escalated {since:.0f} s ago, "
                 "waiting for the repair pipeline (no restart)")
            return
        blocker, severity = self._restart_blocker(component, state, now, emit)
        if blocker is None:
            self._restart(component, state, now, emit)
        else:
            self._escalate_component(component, state, now, blocker, severity=severity, emit=emit)

    def _ask(self, component: Component, check: HttpCheck) -> ProbeResult:
        result: ProbeResult = self._poll_policy(probe_http, self._transport, component, check,
                                     self._http_timeout_s)
        return result

    def _restart_blocker(
        self, component: Component, state: _ComponentState, now: float, emit: _Emit
    ) -> tuple[str | None, Severity]:
        """Why the component must not be restarted now (None when a restart is the right move), and
        the severity an escalation carries (rules 3-5)."""
        # Before any score: the component alone decides (critical when vital).
        severity = judge(vital=component.vital, score=DependencyScore(), settings=self._settings).severity
        if component.config_test:
            check = probe_config(self._transport, component)
            if check.is_unavailable or not check.ok:
                emit(HealthEventKind.VITAL_CHECK_FAILED, check.summary, probe=check.probe,
                     output=check.evidence.get("output", ""))
                what = "cannot run" if check.is_unavailable else "fails"
                return f"its config test {what} ({check.summary}); a restart would not help", severity
        if not component.units:
            return "endpoints keep failing and it has no unit to restart", severity
        score = self._score(self._transport, component)
        verdict = judge(vital=component.vital, score=score, settings=self._settings)
        if not verdict.may_restart:
            emit(HealthEventKind.DEPENDENCY_BLOCKED, f"{component.name}: {verdict.reason}",
                 score=str(score.score), severity=str(verdict.severity),
                 findings="; ".join(f"-{f.points} {f.reason}" for f in score.findings),
                 **({"notes": "; ".join(score.notes)} if score.notes else {}))
            return verdict.reason, verdict.severity
        window = self._settings.restart_window_s
        done = state.restarts_within(now, window)
        if done >= self._settings.restarts_before_escalation:
            return f"endpoints keep failing after {done} restarts within {window:g} s", verdict.severity
        return None, verdict.severity

    def _restart(self, component: Component, state: _ComponentState, now: float, emit: _Emit) -> None:
        # Counted before running: a restart that fails still costs a slot in the window, so a unit
        # that cannot start is escalated as fast as one that starts and fails again.
        state.restarts.append(now)
        outcomes = [bounded_restart(self._transport, unit, deadline_s=self._settings.restart_deadline_s,
                                    clock=self._clock, sleep=self._sleep) for unit in component.units]
        failed = [o for o in outcomes if not o.succeeded]
        units = ",".join(component.units)
        count = f"{state.restarts_within(now, self._settings.restart_window_s)}"
        if failed:
            hung = ",".join(o.unit for o in failed if o.hung)
            emit(HealthEventKind.RESTART_FAILED, "; ".join(o.describe() for o in failed), units=units,
                 restarts_in_window=count, **({"hung_killed": hung} if hung else {}))
        else:
            emit(HealthEventKind.RESTARTED, f"restarted {units}", units=units, restarts_in_window=count)

    def _escalate_component(
        self, component: Component, state: _ComponentState, now: float, reason: str, *,
        severity: Severity, emit: _Emit,
    ) -> None:
        state.escalated_at = now
        state.escalations += 1
        emit(HealthEventKind.ESCALATED, f"{component.name}: {reason}", escalations=str(state.escalations),
             severity=str(severity))
        try:
            self._escalate(component.name, reason, severity)
        except VmRepairError as exc:
            # The hold stays: retrying the hand-over every poll would not make the pipeline accept it.
            log.warning("escalating %s failed: %s", component.name, exc.message)
            log_error(self._audit, component.name, f"escalation failed: {exc.message}")

