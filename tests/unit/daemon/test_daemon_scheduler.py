"""The job loop: order, no overlap, failure isolation, prompt stop and trigger."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.errors import TransportError
from tests.unit.systemd.fakes import Clock


@dataclass
class FakeJob:
    name: str
    interval_s: float = 3600.0
    action: Callable[[], None] = lambda: None
    runs: int = 0

    def run(self) -> None:
        self.runs += 1
        self.action()


@dataclass
class Concurrency:
    """Counts how many jobs run at the same moment."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    peak: int = 0

    def work(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1


def _start(scheduler: Scheduler) -> threading.Thread:
    thread = threading.Thread(target=scheduler.run_forever, daemon=True)
    thread.start()
    return thread


def test_every_job_runs_at_start_then_on_its_interval(audit: MemoryAuditSink) -> None:
    clock = Clock()
    fast, slow = FakeJob("fast", 10), FakeJob("slow", 60)
    scheduler = Scheduler([fast, slow], audit, clock=clock)
    assert scheduler.run_due_once() == ["fast", "slow"]
    clock.now += 10
    assert scheduler.run_due_once() == ["fast"]
    clock.now += 50
    assert scheduler.run_due_once() == ["fast", "slow"]
    assert (fast.runs, slow.runs) == (3, 2)


def test_a_failing_job_is_audited_and_does_not_stop_the_others(audit: MemoryAuditSink) -> None:
    def unreachable() -> None:
        raise TransportError("local: connection refused", host="local", remedy="start sshd")

    def crash() -> None:
        raise KeyError("bug")

    clock = Clock()
    observed: list[tuple[str, bool]] = []
    good = FakeJob("good", 5)
    scheduler = Scheduler([FakeJob("broken", 5, unreachable), FakeJob("buggy", 5, crash), good], audit,
                          clock=clock, observer=lambda name, ok, _at, _d: observed.append((name, ok)))
    scheduler.run_due_once()
    clock.now += 5
    scheduler.run_due_once()
    assert good.runs == 2
    assert observed[:3] == [("broken", False), ("buggy", False), ("good", True)]
    errors = [r for r in audit.records if r["event"] == "error"]
    assert errors[0]["component"] == "daemon"
    assert errors[0]["details"] == {"message": "local: connection refused", "job": "broken",
                                    "error": "TransportError", "remedy": "start sshd"}
    assert errors[1]["details"]["message"] == "KeyError: 'bug'"
    assert len(errors) == 4  # both failing jobs, both rounds


def test_jobs_never_overlap(audit: MemoryAuditSink) -> None:
    seen = Concurrency()
    jobs = [FakeJob(f"job{i}", 0.01, seen.work) for i in range(4)]
    scheduler = Scheduler(jobs, audit)
    thread = _start(scheduler)
    time.sleep(0.4)
    scheduler.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert all(job.runs >= 2 for job in jobs)
    assert seen.peak == 1


def test_stop_interrupts_the_wait_at_once(audit: MemoryAuditSink) -> None:
    job = FakeJob("hourly", 3600)
    scheduler = Scheduler([job], audit)
    thread = _start(scheduler)
    time.sleep(0.1)
    began = time.monotonic()
    scheduler.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert time.monotonic() - began < 0.5
    assert job.runs == 1


def test_trigger_runs_a_job_before_its_interval(audit: MemoryAuditSink) -> None:
    ran = threading.Event()
    job = FakeJob("detect", 3600, ran.set)
    scheduler = Scheduler([job], audit)
    thread = _start(scheduler)
    assert ran.wait(2)
    ran.clear()
    scheduler.trigger("detect")
    assert ran.wait(2)
    scheduler.stop()
    thread.join(timeout=2)
    assert job.runs == 2


def test_current_job_is_reported_while_it_runs(audit: MemoryAuditSink) -> None:
    inside, release = threading.Event(), threading.Event()

    def slow() -> None:
        inside.set()
        release.wait(5)

    scheduler = Scheduler([FakeJob("repair", 3600, slow)], audit)
    assert scheduler.current_job() is None
    thread = _start(scheduler)
    assert inside.wait(2)
    current = scheduler.current_job()
    assert current is not None
    assert current[0] == "repair"
    release.set()
    scheduler.stop()
    thread.join(timeout=2)
    assert scheduler.current_job() is None


def test_job_names_must_be_unique(audit: MemoryAuditSink) -> None:
    with pytest.raises(ValueError, match="job names must be unique"):
        Scheduler([FakeJob("a"), FakeJob("a")], audit)
    scheduler = Scheduler([FakeJob("a")], audit)
    with pytest.raises(ValueError, match="a job named 'a' is scheduled already"):
        scheduler.add(FakeJob("a"))
