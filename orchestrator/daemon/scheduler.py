"""Runs the daemon's periodic jobs one at a time on one thread, each on its own interval.

One thread, so jobs never overlap: a detection never races the repair it triggered, and a baseline is
never recorded while a repair changes the files it packs. Sleeps are waits on a
:class:`threading.Event`, so :meth:`Scheduler.stop` (SIGTERM) and :meth:`Scheduler.trigger` (the health
monitor asks for an escalation) take effect at once instead of at the end of an interval. A job that
raises is logged to the audit trail and rescheduled; it never ends the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.errors import VmRepairError

log = logging.getLogger(__name__)

#: Audit component of the daemon's own records.
DAEMON_COMPONENT = "daemon"


class Job(Protocol):
    """One periodic duty of the daemon (detection, baseline, health polling)."""

    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def run(self) -> None:
        """Do the work once.

        Raises:
            VmRepairError: the work failed; logged by the scheduler, which runs the job again later.
        """


#: Told of every run: job name, whether it succeeded, when it finished (wall clock), duration.
JobObserver = Callable[[str, bool, float, float], None]


@dataclass
class _Slot:
    job: Job
    due: float
    runs: int = 0


class Scheduler:
    """Runs ``jobs`` forever (every job once at start, then every ``interval_s``) until stopped."""

    def __init__(
        self,
        jobs: Sequence[Job],
        audit: AuditSink,
        *,
        observer: JobObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._clock = clock
        self._slots = [_Slot(job, clock()) for job in jobs]
        self._audit = audit
        self._observer = observer
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None

    def add(self, job: Job) -> None:
        """Add ``job`` (due at once); for jobs that need :meth:`trigger` of this scheduler to be built.

        Raises:
            ValueError: a job of that name is scheduled already.
        """
        with self._lock:
            if job.name in (slot.job.name for slot in self._slots):
                raise ValueError(f"a job named {job.name!r} is scheduled already")
            self._slots.append(_Slot(job, self._clock()))
        self._wake.set()

    @property
    def job_names(self) -> tuple[str, ...]:
        return tuple(slot.job.name for slot in self._slots)

    def current_job(self) -> tuple[str, float] | None:
        """(name, seconds it has been running) of the job running now, if any."""
        with self._lock:
            if self._current is None:
                return None
            name, began = self._current
        return name, self._clock() - began

    def trigger(self, name: str) -> None:
        """Run job ``name`` as soon as the running job (if any) ends. Unknown names are ignored."""
        with self._lock:
            for slot in self._slots:
                if slot.job.name == name:
                    slot.due = self._clock()
        self._wake.set()

    def stop(self) -> None:
        """Make :meth:`run_forever` return after the job it is running (if any) ends."""
        self._stopping = True
        self._wake.set()

    def run_forever(self) -> None:
        """Loop until :meth:`stop`; never raises for a job's failure."""
        while True:
            # Clear before looking at due times: a trigger() after this point sets the event again,
            # so the wait below cannot sleep through it.
            self._wake.clear()
            if self._stopping:
                return
            slot = self._next_slot()
            if slot is None:
                self._wake.wait()
                continue
            delay = slot.due - self._clock()
            if delay > 0:
                self._wake.wait(delay)
                continue  # woken early (stop, trigger) or on time: look at the due times again
            self._run(slot)

    def run_due_once(self) -> list[str]:
        """Run every job that is due now, in due order (tests and the foreground `--once` style)."""
        ran = []
        while (slot := self._next_slot()) is not None and slot.due <= self._clock():
            self._run(slot)
            ran.append(slot.job.name)
        return ran

    def _next_slot(self) -> _Slot | None:
        with self._lock:
            return min(self._slots, key=lambda s: s.due, default=None)

    def _run(self, slot: _Slot) -> None:
        began = self._clock()
        with self._lock:
            self._current = (slot.job.name, began)
        ok = False
        try:
            slot.job.run()
            ok = True
        except VmRepairError as exc:
            self._report_failure(slot.job.name, exc.message, type(exc).__name__, exc.remedy)
        except Exception as exc:  # a bug in one job must not end the daemon
            log.exception("job %s crashed", slot.job.name)
            self._report_failure(slot.job.name, f"{type(exc).__name__}: {exc}", "bug", None)
        finally:
            finished = self._clock()
            with self._lock:
                self._current = None
                slot.runs += 1
                # From the start, so the period holds; a job slower than its period runs again as
                # soon as the others that are due have had their turn.
                slot.due = max(began + slot.job.interval_s, finished)
        if self._observer is not None:
            self._observer(slot.job.name, ok, time.time(), finished - began)

    def _report_failure(self, job: str, message: str, error: str, remedy: str | None) -> None:
        log.warning("job %s failed: %s", job, message)
        try:
            log_error(self._audit, DAEMON_COMPONENT, message, job=job, error=error,
                      **({"remedy": remedy} if remedy else {}))
        except VmRepairError as exc:
            # The audit log itself failing is no reason to stop watching the target.
            log.exception("cannot audit the failure of job %s: %s", job, exc.message)
