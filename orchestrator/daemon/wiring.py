"""Builds the daemon from an :class:`~orchestrator.app.App`: the only module that knows every real part.

Everything else in the package takes small callables, so it is tested without a target. Here they
are bound to the real code: detection (:class:`~orchestrator.detect.detector.Detector`), repairs
(:func:`~orchestrator.pipeline.run.run_repair`), baselines, the health monitor, quarantine, start-up
recovery (:func:`~orchestrator.apply.recovery.recover_on_start`), boot diagnostics, retention
(:func:`~orchestrator.prune.run.prune_state`) and the audit log.

Everything that changes the target (repairs, boot remediation, start-up recovery) holds the state
lock while it does, like `vmrepair run`; the daemon does not hold it in between, so an operator's
`vmrepair run` is never locked out by an idle daemon. Modules the idle daemon does not need (the
repair pipeline, quarantine, boot diagnostics) are imported on first use, which keeps it small.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

from orchestrator.agent.api import AgentApi
from orchestrator.app import App
from orchestrator.audit.sink import AuditSink
from orchestrator.baseline import layout
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import DaemonSettings
from orchestrator.config.settings import Settings, load_settings
from orchestrator.daemon.audit_tap import CountingAuditSink
from orchestrator.daemon.detection import DEFERRED, DetectionJob, RepairResult
from orchestrator.daemon.jobs import BaselineJob, BaselineRecord, Escalation, HealthJob, TextfileJob
from orchestrator.daemon.metrics import daemon_registry
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.prune_job import PruneJob
from orchestrator.daemon.quarantine_rules import FailedRepairs
from orchestrator.daemon.rebootjob import DueRebootsRun, RebootJob
from orchestrator.daemon.reload import ReloadedConfig
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.daemon.service import Daemon, HookResult, StartupHook
from orchestrator.daemon.socketpath import socket_path
from orchestrator.daemon.state import DaemonState
from orchestrator.detect.report import DetectionReport
from orchestrator.errors import LockHeldError, QuarantineError, StateError
from orchestrator.fleet.pull import DirectoryPuller, FleetPullJob
from orchestrator.metrics.collector import PersistedCollector, StatePaths, new_registry
from orchestrator.metrics.detections import remember_detection
from orchestrator.metrics.textfile import write_textfile
from orchestrator.prune.run import PruneReport, prune_state
from orchestrator.state.db import open_state
from orchestrator.state.lock import StateLock
from orchestrator.targets.spec import TargetSpec, open_target, parse_target, target_session
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


def build_daemon(app: App, *, notifier: SystemdNotifier | None = None) -> Daemon:
    """The daemon for ``app.settings.daemon``.

    Raises:
        ConfigError: ``daemon.target`` is not a valid target (or an ssh:// one without known_hosts).
        VmNotFoundError: ``daemon.target`` names a VM that does not exist (with auto-repair).
    """
    config: DaemonSettings = app.settings.daemon
    spec = parse_target(config.target)
    notifier = notifier or SystemdNotifier()
    state = DaemonState(target=str(spec), policy=config.policy)
    audit = CountingAuditSink(app.audit, state)
    scheduler = Scheduler([], audit, observer=state.job_finished)
    health = app.settings.health
    failed_repairs = FailedRepairs(limit=health.quarantine_after_failed_repairs,
                                   window_s=health.failed_repairs_window_s)
    detection = DetectionJob(
        interval_s=config.detect_interval_s, target=str(spec), policy=config.policy,
        detect=lambda: detect_target(app, spec), repair=lambda: repair_target(app, spec), state=state,
        audit=audit, announce=notifier.status, notify=app.notifier, on_repair=failed_repairs.record)
    scheduler.add(detection)
    if app.settings.watch.components:  # nothing to baseline otherwise
        scheduler.add(BaselineJob(
            interval_s=config.detect_interval_s, period_s=config.baseline_interval_s, target=str(spec),
            record=lambda: record_target_baseline(app, spec),
            last_recorded_at=lambda: last_baseline_at(app, spec), state=state, audit=audit))
    if config.policy == "auto-repair":
        escalation = Escalation(scheduler.trigger, audit, detection.name, on_severity=state.escalated)
        scheduler.add(_health_job(app, spec, escalation, audit, failed_repairs))
    else:
        # The health monitor restarts units and quarantines components: that is touching the
        # target, which `ask` and `detect-only` promise not to do. Detection still runs.
        log.info("policy %s: no health polling (it restarts units)", config.policy)
    # Reboots already scheduled (a window, `reboot schedule AT`) are performed under every policy:
    # they finish fixes applied with someone's consent (see orchestrator.daemon.rebootjob).
    scheduler.add(RebootJob(interval_s=config.reboot_check_interval_s, due=lambda: count_due_reboots(app),
                            perform=lambda: perform_due_reboots(app), audit=audit))
    if app.settings.retention.enabled:
        scheduler.add(PruneJob(interval_s=app.settings.retention.interval_s,
                               prune=lambda: prune_target_state(app)))
    if app.settings.fleet.pull_dir is not None:
        scheduler.add(FleetPullJob(interval_s=app.settings.fleet.pull_interval_s,
                                   puller=DirectoryPuller(app.settings.fleet.pull_dir),
                                   db=lambda: open_state(app.settings.state_db)))
    # One persisted collector for the socket, the port and the textfile: its session cache is shared.
    persisted = PersistedCollector(StatePaths.of(app.settings))
    textfile = new_registry(persisted)
    metrics = app.settings.metrics
    scheduler.add(TextfileJob(interval_s=metrics.textfile_interval_s,
                              write=lambda: write_textfile(textfile, metrics.textfile_dir)))
    hooks = [StartupHook("recovery", lambda: recover_at_start(app), gates_repairs=True),
             StartupHook("boot-diagnostics", lambda: diagnose_at_start(app, spec, state, audit))]
    return Daemon(settings=config, state=state, scheduler=scheduler, audit=audit,
                  socket_path=socket_path(config), sessions_dir=app.settings.sessions_dir,
                  startup_hooks=hooks, notifier=notifier, reload_config=config_reloader(app.settings),
                  metrics=daemon_registry(state, persisted), metrics_listen=metrics.listen_address)


def config_reloader(running: Settings, *, env: Mapping[str, str] | None = None,
                    ) -> Callable[[], ReloadedConfig]:
    """Loads config.yaml (and the environment) again for SIGHUP, comparing every setting outside
    ``daemon:`` with ``running``, the settings the daemon was built from (those apply at a restart).

    The returned function raises ConfigError when the file is missing or invalid.
    """
    others = [f.name for f in dataclasses.fields(Settings) if f.name not in ("daemon", "config_path")]

    def load() -> ReloadedConfig:
        fresh = load_settings(None if env is None else dict(env))
        changed = tuple(name for name in others if getattr(fresh, name) != getattr(running, name))
        return ReloadedConfig(fresh.daemon, fresh.config_path, changed)

    return load


# -- jobs ------------------------------------------------------------------------------------------

def detect_target(app: App, spec: TargetSpec) -> DetectionReport:
    from orchestrator.detect.answer_store import for_target
    from orchestrator.detect.detector import Detector

    with target_session(app, spec) as (transport, agent):
        # The store keeps the dpkg --verify answers between cycles (each cycle has a new Detector).
        report = Detector(target_watch(app, spec, transport, agent), transport, agent,
                          answers=for_target(app.settings.state_dir, spec.slug)).run()
    remember_detection(app.settings.state_dir, spec.slug, str(spec), report.issues)
    return report


def target_watch(app: App, spec: TargetSpec, transport: Transport, agent: AgentApi) -> WatchConfig:
    """The target's watch: its discovered services with the configured overrides (cached)."""
    from orchestrator.discover.resolve import resolve_for

    # Its own connection to the store: jobs run in the scheduler's thread, the health job is built in
    # the main one, and a SQLite connection belongs to the thread that opened it.
    with open_state(app.settings.state_db) as db:
        return resolve_for(app.settings, db, spec.slug, transport, agent).watch


def repair_target(app: App, spec: TargetSpec) -> RepairResult:
    from orchestrator.pipeline.run import RunOptions, run_repair

    lock = StateLock(app.settings.lock_path)
    try:
        lock.acquire("daemon repair")
    except LockHeldError as exc:
        return RepairResult(DEFERRED, "", exc.message)
    try:
        outcome = run_repair(app, str(spec), RunOptions(assume_yes=True))
    finally:
        lock.release()
    return RepairResult(str(outcome.status), outcome.session.id, outcome.summary,
                        components=tuple((o.issue.component, str(o.status)) for o in outcome.outcomes))


def record_target_baseline(app: App, spec: TargetSpec) -> BaselineRecord:
    from orchestrator.baseline.record import record_baseline

    with target_session(app, spec) as (transport, agent):
        watch = target_watch(app, spec, transport, agent)
        info = record_baseline(app.settings, spec.slug, transport, agent, watch)
    return BaselineRecord(info.name, str(info.directory), tuple(c.name for c in watch.components))


def last_baseline_at(app: App, spec: TargetSpec) -> float | None:
    """When the target's newest complete baseline was written; None when none (or it is unreadable,
    in which case recording a new one is the repair)."""
    try:
        latest = layout.read_latest(layout.target_dir(app.settings.baselines_dir, spec.slug))
        return None if latest is None else (latest.path / layout.BASELINE_JSON).stat().st_mtime
    except (StateError, OSError):
        return None


def count_due_reboots(app: App) -> int:
    """How many recorded reboots may happen now (any target: nothing else would perform them)."""
    from orchestrator.reboot.schedule import scheduler_for

    return len(scheduler_for(app).due())


def perform_due_reboots(app: App) -> DueRebootsRun:
    """Perform the due reboots as `vmrepair reboot now` does, under the state lock."""
    from orchestrator.reboot.executor import run_due_reboots

    lock = StateLock(app.settings.lock_path)
    try:
        lock.acquire("daemon reboot")
    except LockHeldError as exc:
        return DueRebootsRun(deferred=exc.message)
    try:
        outcomes = run_due_reboots(app)
    finally:
        lock.release()
    # "requested": a local reboot was asked for; the next start's recovery verifies it.
    good = [o for o in outcomes if o.is_verified or o.status == "requested"]
    return DueRebootsRun(verified=tuple(o.txn_id for o in good),
                         failed=tuple(f"{o.txn_id}: {o.message}" for o in outcomes if o not in good))


def prune_target_state(app: App) -> PruneReport | None:
    """One prune under the state lock; None when someone else holds it (tried again next round)."""
    lock = StateLock(app.settings.lock_path)
    try:
        lock.acquire("daemon prune")
    except LockHeldError:
        return None
    try:
        return prune_state(app.settings, app.quiet_audit, dry_run=False, lock_held=True)
    finally:
        lock.release()


def _health_job(app: App, spec: TargetSpec, escalate: Escalation, audit: AuditSink,
                failed_repairs: FailedRepairs) -> HealthJob:
    # One transport for the daemon's life: the monitor polls every few seconds. For `local` it is
    # app.local; an ssh:// transport reconnects by itself when the connection dropped.
    from orchestrator.agent.client import RemoteAgent
    from orchestrator.health import HealthMonitor

    transport = open_target(app, spec)
    # Resolved once for the daemon's life: the monitor polls every few seconds and a rediscovery
    # per poll would cost more than the poll (detection rounds resolve again, from the cache).
    probe_agent = RemoteAgent(transport)
    try:
        watch = target_watch(app, spec, transport, probe_agent)
    finally:
        probe_agent.cleanup()
    monitor = HealthMonitor(watch, app.settings.health, transport, audit, escalate)

    def is_vital(component: str) -> bool:
        try:
            return watch.component(component).vital
        except KeyError:
            return True  # unknown to the watch config: nothing to quarantine, and never guess

    def quarantine(component: str, reason: str) -> None:
        from orchestrator.agent.client import RemoteAgent
        from orchestrator.quarantine import quarantine_component

        if is_vital(component):
            # HealthJob already spares vital components; this keeps any other caller from doing it.
            raise QuarantineError(f"refusing to quarantine vital component {component} ({reason})",
                                  remedy="repair it by hand; vital components are never quarantined")
        with StateLock(app.settings.lock_path) as _:
            agent = RemoteAgent(transport)
            try:
                quarantine_component(transport, agent, watch.component(component), reason,
                                     audit=audit, watch=watch, notify=app.notifier)
            finally:
                agent.cleanup()

    health = app.settings.health
    return HealthJob(interval_s=health.interval_s, monitor=monitor, quarantine=quarantine,
                     quarantine_after=health.quarantine_after_escalations, is_vital=is_vital,
                     failed_repairs=failed_repairs, failed_repairs_window_s=health.failed_repairs_window_s,
                     audit=audit)


# -- start-up hooks --------------------------------------------------------------------------------

def recover_at_start(app: App) -> HookResult:
    """Finish or roll back fix applications a crash interrupted, under the state lock.

    Raises:
        StateCorruptError: the state store cannot be trusted (the daemon then makes no repairs).
    """
    from orchestrator.apply.recovery import recover_on_start

    lock = StateLock(app.settings.lock_path)
    try:
        lock.acquire("daemon start-up recovery")
    except LockHeldError as exc:
        # Whoever holds the lock ran this same recovery when it took the lock.
        return HookResult({"skipped": exc.message})
    try:
        report = recover_on_start(app)
    finally:
        lock.release()
    return HookResult(report.as_dict(), tuple(report.errors))


def diagnose_at_start(app: App, spec: TargetSpec, state: DaemonState, audit: AuditSink) -> HookResult:
    """Check every component at start; remediate broken vital ones only under auto-repair, with
    repairs allowed (recovery succeeded) and the state lock free.

    Raises:
        TransportError: the target cannot be reached.
    """
    from orchestrator.baseline.store import usable_baseline
    from orchestrator.bootdiag import diagnose_components
    from orchestrator.bootdiag.fetched import FetchedDebs
    from orchestrator.bootdiag.result import NOT_WORKING
    from orchestrator.bootdiag.verdict import judge_diagnosis
    from orchestrator.daemon.mode import NotWorking
    from orchestrator.layers.debs import fetch_cache_dir

    lock = StateLock(app.settings.lock_path)
    remediate = state.policy == "auto-repair" and state.repairs_allowed
    if remediate:
        try:
            lock.acquire("daemon boot remediation")
        except LockHeldError:
            remediate = False
    try:
        with target_session(app, spec) as (transport, agent):
            diagnosis = diagnose_components(transport, agent, target_watch(app, spec, transport, agent),
                                            baseline=usable_baseline(app.settings, spec.slug), audit=audit,
                                            remediate=remediate,
                                            fetched=FetchedDebs(app.local,
                                                                fetch_cache_dir(app.settings.image_store)))
    finally:
        lock.release()
    # Each component's severity and whether the health monitor may restart it, in the start-up report.
    diagnosis = judge_diagnosis(diagnosis, app.settings.health)
    state.record_boot_mode([c.name for c in diagnosis.components if not c.vital],
                           [NotWorking(c.name, c.vital, str(c.state), "; ".join(c.problems) or str(c.state))
                            for c in diagnosis.components if c.state in NOT_WORKING])
    broken = [c.name for c in diagnosis.components if c.is_broken_vital]
    return HookResult(diagnosis.as_dict(),
                      (f"vital component(s) still broken after start-up: {', '.join(broken)}",) if broken
                      else ())
