"""The daemon's reboot job: it performs a reboot only when one is due, defers to a run holding the
state lock, and records what it did; wired to the real scheduler and store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import AuditSettings, DaemonSettings
from orchestrator.config.reboot import RebootSettings
from orchestrator.config.settings import Settings
from orchestrator.daemon.rebootjob import DueRebootsRun, RebootJob
from orchestrator.daemon.wiring import count_due_reboots, perform_due_reboots
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.state.lock import StateLock


def _job(due: int, result: DueRebootsRun, audit: MemoryAuditSink) -> tuple[RebootJob, list[int]]:
    calls: list[int] = []

    def perform() -> DueRebootsRun:
        calls.append(1)
        return result

    return RebootJob(interval_s=30, due=lambda: due, perform=perform, audit=audit), calls


def test_nothing_due_touches_nothing() -> None:
    audit = MemoryAuditSink()
    job, calls = _job(0, DueRebootsRun(), audit)
    job.run()
    assert calls == [] and audit.records == []


def test_a_due_reboot_is_performed_and_recorded() -> None:
    audit = MemoryAuditSink()
    job, calls = _job(1, DueRebootsRun(verified=("tx-1",), failed=("tx-2: did not come back",)), audit)
    job.run()
    assert calls == [1]
    (record,) = audit.records
    assert (record["event"], record["status"]) == ("daemon_reboots_performed", "failed")
    assert record["details"] == {"verified": ["tx-1"], "failed": ["tx-2: did not come back"]}


def test_a_reboot_deferred_by_the_lock_is_recorded_as_deferred() -> None:
    audit = MemoryAuditSink()
    job, _ = _job(1, DueRebootsRun(deferred="another vmrepair process holds the lock"), audit)
    job.run()
    (record,) = audit.records
    assert (record["event"], record["status"]) == ("daemon_reboot_deferred", "deferred")


@pytest.fixture
def window_app(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[[str], App]:
    def factory(window: str) -> App:
        settings = make_settings(
            daemon=DaemonSettings(socket=tmp_path / "run" / "api.sock"),
            audit=AuditSettings(path=tmp_path / "audit.jsonl"),
            reboot=RebootSettings(policy="window", windows=[window], timezone="UTC"))
        return App(settings)

    return factory


def _window_around(now: dt.datetime, *, opens_in_min: int) -> str:
    start = now + dt.timedelta(minutes=opens_in_min)
    return f"{start:%a %H:%M} for 20m"


@pytest.mark.parametrize(("opens_in_min", "due"), [(120, 0), (-5, 1)])
def test_a_window_reboot_is_due_once_its_window_opened(
        window_app: Callable[[str], App], opens_in_min: int, due: int) -> None:
    app = window_app(_window_around(dt.datetime.now(dt.UTC), opens_in_min=opens_in_min))
    try:
        scheduler_for(app).request("vm:patient", txn_id=None, reason="test", policy="window")
        assert count_due_reboots(app) == due
    finally:
        app.close()


def test_a_due_reboot_without_a_waiting_fix_is_cancelled_and_nothing_rebooted(
        window_app: Callable[[str], App]) -> None:
    app = window_app(_window_around(dt.datetime.now(dt.UTC), opens_in_min=-5))
    try:
        record = scheduler_for(app).request("vm:patient", txn_id=None, reason="test", policy="window")
        result = perform_due_reboots(app)
        assert result == DueRebootsRun()
        (after,) = scheduler_for(app).status("vm:patient")
        assert (after.id, after.state) == (record.id, "cancelled")
        assert count_due_reboots(app) == 0
    finally:
        app.close()


def test_a_due_reboot_waits_while_a_run_holds_the_lock(window_app: Callable[[str], App]) -> None:
    app = window_app(_window_around(dt.datetime.now(dt.UTC), opens_in_min=-5))
    try:
        scheduler_for(app).request("vm:patient", txn_id=None, reason="test", policy="window")
        with StateLock(app.settings.lock_path):
            result = perform_due_reboots(app)
        assert "holds" in result.deferred
        assert count_due_reboots(app) == 1   # still there for the next tick
    finally:
        app.close()
