"""RebootScheduler: policies, decisions re-made from the wall clock at every check (clock jumps, DST),
one open reboot per target, the operator's actions and their refusals, and the executor's marks."""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from collections.abc import Callable

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.reboot import RebootSettings
from orchestrator.errors import NotifyError, RebootError
from orchestrator.reboot.notify import RebootEvent
from orchestrator.reboot.schedule import RebootScheduler
from orchestrator.reboot.store import RebootRecord
from orchestrator.state.db import StateDb
from orchestrator.state.transactions import TransactionStore
from tests.unit.reboot.conftest import FakeClock, RecordingNotifier

Make = Callable[..., RebootScheduler]
SUNDAY_WINDOW = "Sun 03:30 for 1h30"


def _ids(records: list[RebootRecord]) -> list[int]:
    return [r.id for r in records]


# -- policies -----------------------------------------------------------------------------------------

def test_prompt_waits_for_the_operator(make_scheduler: Make, clock: FakeClock,
                                       notifier: RecordingNotifier) -> None:
    scheduler = make_scheduler(policy="prompt")
    record = scheduler.request("vm:web", txn_id="tx-1", reason="kernel cmdline fix")
    assert (record.state, record.policy, record.not_before) == ("waiting_operator", "prompt", None)
    assert record.when.startswith("when the operator approves")
    clock.advance(days=30)
    assert scheduler.due() == []
    [event] = notifier.events
    assert (event.kind, event.target, event.txn_id, event.reboot_at) == (
        "reboot_scheduled", "vm:web", "tx-1", None)
    assert "`vmrepair reboot now --target vm:web`" in event.message
    assert "cancel with `vmrepair reboot cancel --target vm:web`" in event.message


def test_automatic_reboots_after_the_notice(make_scheduler: Make, clock: FakeClock,
                                            notifier: RecordingNotifier) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=300)
    record = scheduler.request("vm:web", txn_id="tx-1", reason="fstab fix")
    assert record.state == "scheduled"
    assert record.when == "at 2025-03-26T09:05:00Z (Wed 10:05 CET) (in 5m)"
    [event] = notifier.events
    assert event.reboot_at == "2025-03-26T09:05:00Z"
    assert "vm:web will reboot at 2025-03-26T09:05:00Z (Wed 10:05 CET) (in 5m)" in event.message
    assert "cancel with `vmrepair reboot cancel --target vm:web`" in event.message
    clock.advance(seconds=299)
    assert scheduler.due() == []
    clock.advance(seconds=1)
    [due] = scheduler.due()
    assert due.id == record.id
    assert due.when.startswith("now (due since 2025-03-26T09:05:00Z (Wed 10:05 CET))")


def test_notice_override_per_request(make_scheduler: Make, clock: FakeClock) -> None:
    scheduler = make_scheduler(policy="prompt", notice_s=300)
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r", policy="automatic", notice_s=0)
    assert _ids(scheduler.due()) == [record.id]


def test_window_policy_waits_for_the_window(make_scheduler: Make, clock: FakeClock,
                                           berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = make_scheduler(policy="window", windows=["Sun 04:00 for 1h"])
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    assert (record.state, record.window, record.not_before) == ("scheduled", "Sun 04:00 for 1h", None)
    # Sunday 2025-03-30 is the spring DST change: 04:00 is CEST.
    assert record.when == "next window 2025-03-30T02:00:00Z (Sun 04:00 CEST) (in 3d17h; Sun 04:00 for 1h)"
    clock.set(dt.datetime(2025, 3, 30, 3, 59, tzinfo=berlin))
    assert scheduler.due() == []
    clock.set(dt.datetime(2025, 3, 30, 4, 10, tzinfo=berlin))
    [due] = scheduler.due()
    assert due.when == "now, in window Sun 04:00 for 1h (until 2025-03-30T03:00:00Z (Sun 05:00 CEST))"
    clock.set(dt.datetime(2025, 3, 30, 5, 0, tzinfo=berlin))
    assert scheduler.due() == []


def test_window_announcement_carries_the_next_start(make_scheduler: Make,
                                                    notifier: RecordingNotifier) -> None:
    make_scheduler(policy="window", windows=[SUNDAY_WINDOW]).request("vm:web", txn_id="tx-1", reason="r")
    [event] = notifier.events
    assert event.reboot_at == "2025-03-30T01:30:00Z"
    assert "next window 2025-03-30T01:30:00Z (Sun 03:30 CEST)" in event.message


def test_window_policy_without_windows_is_refused(make_scheduler: Make) -> None:
    scheduler = make_scheduler(policy="prompt", windows=[])
    with pytest.raises(RebootError) as caught:
        scheduler.request("vm:web", txn_id="tx-1", reason="r", policy="window")
    assert caught.value.message == "policy `window` but no maintenance windows are configured"


def test_unknown_policy_is_refused(make_scheduler: Make) -> None:
    with pytest.raises(RebootError) as caught:
        make_scheduler().request("vm:web", txn_id="tx-1", reason="r", policy="whenever")
    assert caught.value.message == "unknown reboot policy 'whenever' (use automatic, window, prompt)"


def test_stored_windows_win_over_a_later_config_change(
    db: StateDb, notifier: RecordingNotifier, clock: FakeClock, berlin: zoneinfo.ZoneInfo
) -> None:
    first = RebootScheduler(db, RebootSettings(policy="window", windows=[SUNDAY_WINDOW]), notifier, clock,
                            tz=berlin)
    first.request("vm:web", txn_id="tx-1", reason="r")
    later = RebootScheduler(db, RebootSettings(policy="window", windows=["daily 12:00 for 1h"]), notifier,
                            clock, tz=berlin)
    clock.set(dt.datetime(2025, 3, 26, 12, 30, tzinfo=berlin))
    assert later.due() == []
    clock.set(dt.datetime(2025, 3, 30, 3, 45, tzinfo=berlin))
    assert len(later.due()) == 1


# -- clock jumps ---------------------------------------------------------------------------------------

def test_clock_jumping_past_the_window_waits_for_the_next(make_scheduler: Make, clock: FakeClock,
                                                          berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = make_scheduler(policy="window", windows=[SUNDAY_WINDOW])
    clock.set(dt.datetime(2025, 1, 11, 23, 0, tzinfo=berlin))   # Saturday night
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    clock.set(dt.datetime(2025, 1, 12, 6, 0, tzinfo=berlin))    # slept through Sunday's window
    assert scheduler.due() == []
    [status] = scheduler.status()
    assert status.when.startswith("next window 2025-01-19T02:30:00Z (Sun 03:30 CET)")
    clock.set(dt.datetime(2025, 1, 19, 3, 31, tzinfo=berlin))
    assert len(scheduler.due()) == 1


def test_clock_jumping_into_the_window_may_go_now(make_scheduler: Make, clock: FakeClock,
                                                  berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = make_scheduler(policy="window", windows=[SUNDAY_WINDOW])
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    assert scheduler.due() == []
    clock.set(dt.datetime(2025, 3, 30, 4, 0, tzinfo=berlin))
    assert len(scheduler.due()) == 1


def test_clock_jumping_back_does_not_reboot_twice(make_scheduler: Make, clock: FakeClock,
                                                  berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = make_scheduler(policy="window", windows=[SUNDAY_WINDOW])
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    clock.set(dt.datetime(2025, 3, 30, 4, 0, tzinfo=berlin))
    [due] = scheduler.due()
    scheduler.mark(due.id, "rebooting")
    assert scheduler.due() == []
    clock.advance(minutes=5)
    scheduler.mark(due.id, "done")
    clock.set(dt.datetime(2025, 3, 30, 3, 45, tzinfo=berlin))   # NTP steps the clock back, into the window
    assert scheduler.due() == []
    [status] = scheduler.status()
    assert status.state == "done"


def test_clock_jumping_back_before_the_notice_waits_again(make_scheduler: Make, clock: FakeClock) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=600)
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    clock.advance(minutes=11)
    assert len(scheduler.due()) == 1
    clock.advance(hours=-1)
    assert scheduler.due() == []


# -- one open reboot per target -------------------------------------------------------------------------

def test_second_request_joins_the_open_reboot(make_scheduler: Make, notifier: RecordingNotifier,
                                              audit: MemoryAuditSink) -> None:
    scheduler = make_scheduler(policy="automatic")
    first = scheduler.request("ssh://root@db1", txn_id="tx-1", reason="fstab fix")
    second = scheduler.request("ssh://root@db1:22", txn_id="tx-2", reason="grub fix", policy="prompt")
    assert second.id == first.id
    assert second.target == "ssh://root@db1:22"
    assert (second.policy, second.state) == ("automatic", "scheduled")
    assert second.txn_ids == ("tx-1", "tx-2")
    assert second.reason == "fstab fix; grub fix"
    assert len(notifier.events) == 1
    assert [r["event"] for r in audit.records] == ["reboot_requested", "reboot_joined"]
    again = scheduler.request("ssh://root@db1", txn_id="tx-2", reason="grub fix")
    assert (again.txn_ids, again.reason) == (("tx-1", "tx-2"), "fstab fix; grub fix")


def test_other_targets_and_finished_reboots_get_their_own(make_scheduler: Make) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=0)
    web = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    db1 = scheduler.request("vm:db1", txn_id="tx-2", reason="r")
    assert web.id != db1.id
    scheduler.mark(web.id, "rebooting")
    scheduler.mark(web.id, "done")
    again = scheduler.request("vm:web", txn_id="tx-3", reason="r")
    assert again.id not in (web.id, db1.id)


def test_a_request_during_a_reboot_waits_for_it(make_scheduler: Make) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=0)
    running = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    scheduler.mark(running.id, "rebooting")
    queued = scheduler.request("vm:web", txn_id="tx-2", reason="applied meanwhile")
    assert queued.id != running.id
    assert scheduler.due() == []
    scheduler.mark(running.id, "done")
    assert _ids(scheduler.due()) == [queued.id]


def test_the_store_itself_refuses_a_second_open_reboot(make_scheduler: Make, db: StateDb) -> None:
    make_scheduler().request("vm:web", txn_id="tx-1", reason="r")
    raw = sqlite3.connect(db.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=r"UNIQUE constraint failed: reboots\.target"):
            raw.execute("INSERT INTO reboots (target, policy, state, requested_at, updated_at)"
                        " VALUES ('vm:web', 'automatic', 'scheduled', 'x', 'x')")
    finally:
        raw.close()


# -- operator actions -----------------------------------------------------------------------------------

def test_approve_now_makes_a_prompt_reboot_due(make_scheduler: Make, audit: MemoryAuditSink) -> None:
    scheduler = make_scheduler(policy="prompt")
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    approved = scheduler.approve_now("vm:web")
    assert (approved.id, approved.state, approved.policy) == (record.id, "scheduled", "prompt")
    assert _ids(scheduler.due("vm:web")) == [record.id]
    assert scheduler.due("vm:other") == []
    assert audit.records[-1]["event"] == "reboot_approved"


def test_approve_now_overrides_a_window(make_scheduler: Make) -> None:
    scheduler = make_scheduler(policy="window", windows=[SUNDAY_WINDOW])
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    assert scheduler.approve_now("vm:web").window == ""
    assert len(scheduler.due()) == 1


@pytest.mark.parametrize("action", ["approve_now", "cancel"])
def test_actions_refuse_when_nothing_is_pending(make_scheduler: Make, action: str) -> None:
    scheduler = make_scheduler()
    with pytest.raises(RebootError) as caught:
        getattr(scheduler, action)("vm:ghost")
    assert caught.value.message == "nothing pending for vm:ghost"
    assert caught.value.remedy == "see `vmrepair reboot status`"


def test_actions_refuse_during_the_reboot(make_scheduler: Make, clock: FakeClock) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=0)
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    scheduler.mark(record.id, "rebooting")
    with pytest.raises(RebootError) as caught:
        scheduler.cancel("vm:web")
    assert caught.value.message == ("the reboot of vm:web is already in progress; it can no longer be "
                                    "cancelled")
    with pytest.raises(RebootError, match="it can no longer be rescheduled"):
        scheduler.schedule_at("vm:web", clock.now + dt.timedelta(hours=1))


def test_schedule_at_moves_and_announces(make_scheduler: Make, clock: FakeClock,
                                         notifier: RecordingNotifier, berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = make_scheduler(policy="prompt")
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    at = dt.datetime(2025, 3, 27, 2, 0, tzinfo=berlin)
    moved = scheduler.schedule_at("vm:web", at)
    assert (moved.state, moved.when) == ("scheduled", "at 2025-03-27T01:00:00Z (Thu 02:00 CET) (in 16h00m)")
    assert notifier.events[-1].reboot_at == "2025-03-27T01:00:00Z"
    clock.set(at - dt.timedelta(seconds=1))
    assert scheduler.due() == []
    clock.set(at)
    assert len(scheduler.due()) == 1


def test_schedule_at_refuses_the_past_and_naive_times(make_scheduler: Make, clock: FakeClock) -> None:
    scheduler = make_scheduler(policy="prompt")
    scheduler.request("vm:web", txn_id="tx-1", reason="r")
    with pytest.raises(RebootError) as caught:
        scheduler.schedule_at("vm:web", clock.now - dt.timedelta(minutes=1))
    assert caught.value.message == ("cannot schedule a reboot at 2025-03-26T08:59:00Z (Wed 09:59 CET): "
                                    "that is in the past (now is 2025-03-26T09:00:00Z (Wed 10:00 CET))")
    with pytest.raises(RebootError, match="the time has no zone"):
        scheduler.schedule_at("vm:web", dt.datetime(2030, 1, 1))   # naive on purpose
    with pytest.raises(RebootError, match="nothing pending for vm:ghost"):
        scheduler.schedule_at("vm:ghost", clock.now + dt.timedelta(hours=1))


def test_cancel(make_scheduler: Make, clock: FakeClock, audit: MemoryAuditSink) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=0)
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    cancelled = scheduler.cancel("vm:web")
    assert (cancelled.id, cancelled.state) == (record.id, "cancelled")
    assert cancelled.when == "cancelled at 2025-03-26T09:00:00Z (Wed 10:00 CET)"
    assert scheduler.due() == []
    assert audit.records[-1]["event"] == "reboot_cancelled"


# -- executor marks --------------------------------------------------------------------------------------

def test_mark_moves_forward_only(make_scheduler: Make) -> None:
    scheduler = make_scheduler(policy="prompt")
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    with pytest.raises(RebootError) as caught:
        scheduler.mark(record.id, "rebooting")
    assert caught.value.message == (f"reboot #{record.id} of vm:web is waiting_operator; it cannot become "
                                    "rebooting")
    scheduler.approve_now("vm:web")
    scheduler.mark(record.id, "rebooting")
    assert scheduler.mark(record.id, "rebooting").state == "rebooting"   # a retried mark is harmless
    failed = scheduler.mark(record.id, "unreachable", error="no SSH after 600 s")
    assert (failed.state, failed.error) == ("unreachable", "no SSH after 600 s")
    with pytest.raises(RebootError, match="is unreachable; it cannot become done"):
        scheduler.mark(record.id, "done")


def test_mark_refuses_unknown_states_and_records(make_scheduler: Make) -> None:
    scheduler = make_scheduler()
    with pytest.raises(RebootError) as caught:
        scheduler.mark(1, "exploded")
    assert caught.value.message == ("cannot mark a reboot 'exploded' (use rebooting, done, failed, "
                                    "unreachable, cancelled)")
    with pytest.raises(RebootError) as missing:
        scheduler.mark(999, "done")
    assert missing.value.message == "no reboot #999"


# -- status ------------------------------------------------------------------------------------------------

def test_status_shows_open_running_and_the_last_finished(make_scheduler: Make, db: StateDb) -> None:
    scheduler = make_scheduler(policy="automatic", notice_s=0)
    txn = TransactionStore(db).create(package_id="p", package_dir="/p", target="vm:web", component="nginx",
                                      backup_dir="/b", ops_total=1, txn_id="tx-1")
    old = scheduler.request("vm:web", txn_id="tx-1", reason="r1")
    scheduler.mark(old.id, "rebooting")
    scheduler.mark(old.id, "failed", error="verification failed")
    last = scheduler.request("vm:web", txn_id="tx-2", reason="r2")
    scheduler.mark(last.id, "rebooting")
    scheduler.mark(last.id, "done")
    running = scheduler.request("vm:db1", txn_id="tx-3", reason="r3")
    scheduler.mark(running.id, "rebooting")
    waiting = scheduler.request("vm:web", txn_id="tx-4", reason="r4", policy="prompt")
    found = {r.id: r for r in scheduler.status()}
    assert sorted(found) == sorted([last.id, running.id, waiting.id])
    assert found[running.id].when == "in progress since 2025-03-26T09:00:00Z (Wed 10:00 CET)"
    assert found[last.id].when == "done at 2025-03-26T09:00:00Z (Wed 10:00 CET)"
    assert _ids(scheduler.status("vm:db1")) == [running.id]
    assert found[last.id].support_ref == ""
    first = scheduler.store.get(old.id)
    assert first.support_ref == txn.support_ref
    assert first.as_dict()["txn_ids"] == ["tx-1"]


# -- failures around the scheduler ------------------------------------------------------------------------

class _DeadNotifier:
    def notify(self, event: RebootEvent) -> None:
        raise NotifyError("webhook http://hooks.invalid unreachable")


def test_a_failing_notifier_does_not_lose_the_request(db: StateDb, clock: FakeClock,
                                                      berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = RebootScheduler(db, RebootSettings(policy="automatic"), _DeadNotifier(), clock, tz=berlin)
    record = scheduler.request("vm:web", txn_id="tx-1", reason="r")
    assert [r.id for r in scheduler.status()] == [record.id]


def test_a_naive_clock_is_refused(db: StateDb, berlin: zoneinfo.ZoneInfo) -> None:
    scheduler = RebootScheduler(db, RebootSettings(), RecordingNotifier(),
                                lambda: dt.datetime(2025, 1, 1), tz=berlin)   # naive on purpose
    with pytest.raises(RebootError) as caught:
        scheduler.due()
    assert caught.value.message == "the scheduler's clock must give timezone-aware times"


def test_invalid_target_is_refused(make_scheduler: Make) -> None:
    from orchestrator.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid target 'web'"):
        make_scheduler().request("web", txn_id="tx-1", reason="r")
