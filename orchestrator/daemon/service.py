"""The daemon's lifecycle: start-up hooks, API, job thread, watchdog, and a clean stop on a signal.

Threads: the main thread only waits for SIGTERM/SIGINT and SIGHUP (``sigtimedwait``, with the
signals blocked in every thread, so no Python signal handler ever runs in the middle of a lock) and
sends watchdog pings. SIGHUP reloads the configuration, as daemons conventionally do (``systemctl
reload vmrepair``): validated first, an invalid one refused with the running one kept; which
settings apply live and which need a restart is listed in :mod:`orchestrator.daemon.reload`.
One thread does everything that touches the target or the state store: the start-up hooks,
then the jobs (:class:`~orchestrator.daemon.scheduler.Scheduler`); one thread, because the state
store's connection must not be shared between threads, and so that nothing overlaps. The API has
an accept thread and one short-lived thread per connection; it serves from the start, so `vmrepair
status` says "recovering" rather than "no daemon" while the hooks run.

Stopping: the scheduler stops taking jobs at once. A job in flight gets ``stop_grace_s`` to finish;
after that it is **abandoned**: the process exits with the job's thread still inside it. That is safe
by construction: the target is only changed by applying a fix package, which journals every step,
and the start-up recovery hook of the next start finishes or rolls back an interrupted application;
a troubleshooting VM left behind is removed by `vmrepair vm reap`. The abandonment is audited.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.config.daemon import DaemonSettings
from orchestrator.daemon import socketpath
from orchestrator.daemon.api import ApiRoutes
from orchestrator.daemon.metrics_port import MetricsPortServer, bind_metrics_port
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.reload import ReloadedConfig, plan_reload
from orchestrator.daemon.scheduler import DAEMON_COMPONENT, Scheduler
from orchestrator.daemon.server import ApiServer, uid_check
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import VmRepairError

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
#: Blocked in every thread and taken by sigtimedwait() in the main thread only.
HANDLED_SIGNALS = STOP_SIGNALS | {signal.SIGHUP}
#: How often the main thread wakes when systemd wants no watchdog pings (to notice a dead job thread).
IDLE_CHECK_S = 30.0
#: Exit status when the job thread died: Restart=on-failure starts a fresh daemon.
EXIT_JOBS_GONE = 70


@dataclass(frozen=True)
class HookResult:
    report: dict[str, Any]
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartupHook:
    """Runs once before the jobs start (recovery, boot diagnostics).

    ``run`` raises VmRepairError or returns errors when it failed. When a ``gates_repairs`` hook
    fails, the daemon is not ready and makes no repairs until a restart recovers cleanly.
    """

    name: str
    run: Callable[[], HookResult]
    gates_repairs: bool = False


@dataclass
class Daemon:
    settings: DaemonSettings
    state: DaemonState
    scheduler: Scheduler
    audit: AuditSink
    socket_path: Path
    sessions_dir: Path
    startup_hooks: Sequence[StartupHook] = ()
    notifier: SystemdNotifier = field(default_factory=SystemdNotifier)
    #: Loads config.yaml again on SIGHUP (raises ConfigError when invalid); None: nothing to reload.
    reload_config: Callable[[], ReloadedConfig] | None = None
    #: What /metrics serves (socket and port); None: the daemon's own metrics only.
    metrics: CollectorRegistry | None = None
    #: (address, port) of ``metrics.listen``; None: /metrics on the socket only.
    metrics_listen: tuple[str, int] | None = None
    _server: ApiServer | None = field(default=None, init=False)
    _metrics_port: MetricsPortServer | None = field(default=None, init=False)
    _socket_inode: int = field(default=0, init=False)
    _jobs: threading.Thread | None = field(default=None, init=False)
    _started: threading.Event = field(default_factory=threading.Event, init=False)

    def start(self) -> None:
        """Serve the API, then start the job thread (start-up hooks, READY=1, then the jobs).

        Raises:
            DaemonError: the API socket cannot be set up (see :mod:`orchestrator.daemon.socketpath`),
                or the metrics port cannot be bound.
        """
        self.notifier.status("starting")
        listener = socketpath.bind_listener(
            self.socket_path, backlog=self.settings.max_connections,
            mode=socketpath.socket_mode(self.settings))
        self._socket_inode = self.socket_path.stat().st_ino
        self._server = ApiServer(
            listener, ApiRoutes(self.state, self.sessions_dir, registry=self.metrics), self.audit,
            is_allowed=uid_check(self.settings.allowed_uids),
            request_timeout_s=self.settings.request_timeout_s,
            max_connections=self.settings.max_connections)
        self._server.start()
        if self.metrics_listen is not None and self.metrics is not None:
            self._metrics_port = MetricsPortServer(
                bind_metrics_port(*self.metrics_listen), self.metrics,
                request_timeout_s=self.settings.request_timeout_s)
            self._metrics_port.start()
            log.info("metrics also on http://%s:%d/metrics", *self._metrics_port.address)
        self._jobs = threading.Thread(target=self._job_thread, name="jobs", daemon=True)
        self._jobs.start()
        log.info("daemon starting: API on %s, jobs %s", self.socket_path, ", ".join(self.scheduler.job_names))

    def wait_started(self, timeout: float | None = None) -> bool:
        """True once the start-up hooks have run and READY=1 was sent."""
        return self._started.wait(timeout)

    def _job_thread(self) -> None:
        self._run_startup_hooks()
        detail = str(self.state.readiness()["detail"])
        self.notifier.ready(f"{detail}; policy {self.state.policy} on {self.state.target}")
        log.info("daemon ready: %s", detail)
        self._started.set()
        self.scheduler.run_forever()

    def _run_startup_hooks(self) -> None:
        failed: list[str] = []
        for hook in self.startup_hooks:
            self.notifier.status(f"starting: {hook.name}")
            try:
                result = hook.run()
            except VmRepairError as exc:
                result = HookResult({"error": exc.message, "remedy": exc.remedy}, (exc.message,))
            except Exception as exc:  # a bug in a hook must not leave the daemon without its jobs
                log.exception("start-up hook %s crashed", hook.name)
                text = f"{type(exc).__name__}: {exc}"
                result = HookResult({"error": text}, (text,))
            self.state.record_startup(hook.name, {**result.report, "errors": list(result.errors)})
            for error in result.errors:
                self._audit_error(f"start-up {hook.name}: {error}", hook=hook.name)
            if result.errors and hook.gates_repairs:
                failed.append(f"{hook.name} failed: {result.errors[0]}")
                # At once, so the hooks after this one (boot diagnostics) do not repair either.
                self.state.set_startup_failed("; ".join(failed) + "; repairs are held back until a "
                                              "restart recovers cleanly")
        if not failed:
            self.state.set_ready("start-up recovery finished")

    def wait_for_stop(self) -> int | None:
        """Block until SIGTERM or SIGINT (which the caller has blocked) and return it; reload the
        configuration on SIGHUP and ping the watchdog meanwhile. None when the job thread is gone (a
        bug): the daemon cannot do its work."""
        interval = self.notifier.watchdog_interval_s
        while True:
            info = signal.sigtimedwait(HANDLED_SIGNALS, interval or IDLE_CHECK_S)
            if info is not None and info.si_signo in STOP_SIGNALS:
                return info.si_signo
            if info is not None:
                self.reload()
            # No `continue` after a reload: a stream of SIGHUPs must not starve the watchdog ping.
            if self._jobs is None or not self._jobs.is_alive():
                log.critical("the job thread is gone; exiting so the service manager restarts us")
                return None
            if self._is_healthy():
                if interval is not None:
                    self.notifier.watchdog()
            else:
                log.error("a job has run longer than %.0f s; withholding the watchdog ping",
                          self.settings.job_stall_s)

    def _is_healthy(self) -> bool:
        current = self.scheduler.current_job()
        return current is None or current[1] < self.settings.job_stall_s

    def reload(self) -> bool:
        """Load the configuration again and apply what can change live (SIGHUP); True when the new
        one was accepted. An invalid one (or a loader that fails in any way) is refused with a log
        line and an audit record, and the running configuration is kept: a typo in config.yaml must
        not stop a daemon that works. Never raises."""
        if self.reload_config is None:
            log.warning("SIGHUP: this daemon has no configuration to reload")
            return False
        try:
            loaded = self.reload_config()
        except VmRepairError as exc:
            return self._refuse_reload(exc.message)
        except Exception as exc:  # a bug in the loader must not take a working daemon down
            log.debug("configuration loader failed", exc_info=True)
            return self._refuse_reload(f"{type(exc).__name__}: {exc}")
        plan = plan_reload(self.settings, loaded)
        self.settings = plan.settings
        if self._server is not None:
            self._server.reconfigure(is_allowed=uid_check(plan.settings.allowed_uids),
                                     request_timeout_s=plan.settings.request_timeout_s)
            try:
                socketpath.set_socket_mode(self.socket_path, self._socket_inode,
                                           socketpath.socket_mode(plan.settings))
            except OSError as exc:
                log.warning("SIGHUP: cannot change the mode of %s: %s", self.socket_path, exc)
        where = str(loaded.path or "the built-in defaults")
        log.info("SIGHUP: reloaded %s: applied %s; needs a restart to apply: %s", where,
                 ", ".join(plan.applied) or "nothing", ", ".join(plan.needs_restart) or "nothing")
        self._audit_quietly("config_reloaded", "ok", {
            "path": where, "applied": list(plan.applied), "needs_restart": list(plan.needs_restart)})
        return True

    def _refuse_reload(self, message: str) -> bool:
        log.error("SIGHUP: configuration refused, the running one is kept: %s", message)
        self._audit_quietly("config_reload_refused", "refused", {"error": message})
        return False

    def _audit_quietly(self, event: str, status: str, details: dict[str, object]) -> None:
        try:
            self.audit.record(event, component=DAEMON_COMPONENT, status=status, details=details,
                              durable=True)
        except VmRepairError as exc:
            log.exception("cannot write to the audit log: %s", exc.message)

    def stop(self) -> bool:
        """Stop jobs and API; returns False when a job had to be abandoned (see module docstring)."""
        self.notifier.stopping()
        self.scheduler.stop()
        finished = True
        if self._jobs is not None:
            self._jobs.join(timeout=self.settings.stop_grace_s)
            current = self.scheduler.current_job()
            if self._jobs.is_alive() and current is not None:
                finished = False
                self._audit_error(f"job {current[0]} abandoned at stop after {current[1]:.0f} s; an "
                                  "interrupted fix application is recovered at the next start",
                                  job=current[0])
        if self._server is not None:
            self._server.close()
            socketpath.remove_socket(self.socket_path, self._socket_inode)
        if self._metrics_port is not None:
            self._metrics_port.close()
        log.info("daemon stopped%s", "" if finished else " (a job was abandoned)")
        return finished

    def run(self) -> int:
        """start(), wait for SIGTERM/SIGINT (reloading on SIGHUP), stop(); the CLI's `vmrepair daemon`.

        Raises:
            DaemonError: as :meth:`start`.
        """
        # Blocked before any thread starts, so every thread inherits the mask and the signals are
        # only ever taken by sigtimedwait() in this thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        signo = self.wait_for_stop()
        if signo is not None:
            log.info("received %s, stopping", signal.Signals(signo).name)
        self.stop()
        return 0 if signo is not None else EXIT_JOBS_GONE

    def _audit_error(self, message: str, **details: object) -> None:
        log.error("%s", message)
        try:
            log_error(self.audit, DAEMON_COMPONENT, message, **details)
        except VmRepairError as exc:
            log.exception("cannot write to the audit log: %s", exc.message)
