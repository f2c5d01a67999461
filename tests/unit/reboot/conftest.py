"""Fixtures for the reboot tests: a state store in tmp, a clock the test moves, a notifier that
records, and zones from the system tz database (skipped with the reason when it lacks them)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.reboot import RebootSettings
from orchestrator.reboot.notify import RebootEvent
from orchestrator.reboot.schedule import RebootScheduler
from orchestrator.state.db import StateDb, open_state
from tests.unit.zones import berlin, zone

__all__ = ["berlin", "zone"]


@dataclass
class FakeClock:
    """The wall clock, set and jumped by the test (forward, backward, across DST)."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> None:
        # Through UTC: elapsed time, not wall time.
        self.now = (self.now.astimezone(dt.UTC) + dt.timedelta(**delta)).astimezone(self.now.tzinfo)


@dataclass
class RecordingNotifier:
    events: list[RebootEvent] = field(default_factory=list)

    def notify(self, event: RebootEvent) -> None:
        self.events.append(event)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDb]:
    store = open_state(tmp_path / "state" / "state.db")
    yield store
    store.close()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def clock(berlin: zoneinfo.ZoneInfo) -> FakeClock:
    # Wednesday 2025-03-26 10:00 CET: the Sunday after is the spring DST change.
    return FakeClock(dt.datetime(2025, 3, 26, 10, 0, tzinfo=berlin))


@pytest.fixture
def make_scheduler(db: StateDb, notifier: RecordingNotifier, clock: FakeClock, audit: MemoryAuditSink,
                   berlin: zoneinfo.ZoneInfo) -> Callable[..., RebootScheduler]:
    def factory(**settings: Any) -> RebootScheduler:
        return RebootScheduler(db, RebootSettings(**settings), notifier, clock, tz=berlin, audit=audit)

    return factory
