"""Maintenance windows: the rebootmgr-style grammar, and open/next decisions in local wall time
across week boundaries and DST changes."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from orchestrator.boot.window import (
    ACCEPTED_FORMS,
    EVERY_DAY,
    current,
    local_zone,
    next_start,
    parse_duration,
    parse_window,
    parse_windows,
)
from orchestrator.errors import ConfigError

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@pytest.mark.parametrize(("text", "days", "start", "minutes"), [
    ("Sun 03:30 for 1h30", {SUN}, dt.time(3, 30), 90),
    ("Mon..Fri 02:00 for 45m", {MON, TUE, WED, THU, FRI}, dt.time(2, 0), 45),
    ("daily 04:00 for 2h", EVERY_DAY, dt.time(4, 0), 120),
    ("*-*-* 04:00 for 2h", EVERY_DAY, dt.time(4, 0), 120),
    ("Sat,Sun *-*-* 0:15 for 1h30m", {SAT, SUN}, dt.time(0, 15), 90),
    ("3:30 for 90min", EVERY_DAY, dt.time(3, 30), 90),
    ("Sat..Mon 23:00 for 48h", {SAT, SUN, MON}, dt.time(23, 0), 48 * 60),
    ("Mon..Wed,Fri 01:00 for 1h 5m", {MON, TUE, WED, FRI}, dt.time(1, 0), 65),
    ("sunday 03:30 FOR 1H30", {SUN}, dt.time(3, 30), 90),
])
def test_accepted_forms(text: str, days: set[int], start: dt.time, minutes: int) -> None:
    window = parse_window(text)
    assert window.weekdays == frozenset(days)
    assert window.start == start
    assert window.duration == dt.timedelta(minutes=minutes)
    assert str(window) == " ".join(text.split())


@pytest.mark.parametrize(("text", "why"), [
    ("", "it is empty"),
    ("Sun 03:30", "expected `H:MM for DURATION`"),
    ("Sun 03:30 for 1h for 2h", "expected `H:MM for DURATION`"),
    ("for 1h", "the start time is missing before `for`"),
    ("Sun 03:30 for", "the duration is missing"),
    ("Sunn 03:30 for 1h", "unknown day 'Sunn' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily)"),
    ("Mon.. 03:30 for 1h", "unknown day '' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily)"),
    ("Sun 24:00 for 1h", "start time '24:00' is not H:MM between 0:00 and 23:59"),
    ("Sun 3h30 for 1h", "start time '3h30' is not H:MM between 0:00 and 23:59"),
    ("Sun 03:30 for 1x", "duration '1x' is not like 1h30, 2h or 90m"),
    ("Sun 03:30 for 90", "duration '90' is not like 1h30, 2h or 90m"),
    ("Sun 03:30 for 1h60", "duration '1h60': minutes after `h` must be below 60"),
    ("Sun 03:30 for 0m", "duration '0m' must be more than 0 and at most 7 days"),
    ("Sun 03:30 for 169h", "duration '169h' must be more than 0 and at most 7 days"),
])
def test_invalid_windows_name_the_text_the_problem_and_the_forms(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_window(text)
    assert caught.value.message == f"invalid maintenance window {text!r}: {why}"
    assert caught.value.remedy == ACCEPTED_FORMS
    assert "`Sun 03:30 for 1h30`" in ACCEPTED_FORMS


def test_parse_windows_stops_at_the_first_bad_one() -> None:
    with pytest.raises(ConfigError, match="'Fri 9:00 for soon'"):
        parse_windows(["Sun 03:30 for 1h30", "Fri 9:00 for soon"])


def test_parse_duration_alone() -> None:
    assert parse_duration("1h30") == dt.timedelta(minutes=90)
    with pytest.raises(ConfigError, match="invalid maintenance window '2 hours'"):
        parse_duration("2 hours")


def test_next_start_crosses_the_week_boundary(berlin: zoneinfo.ZoneInfo) -> None:
    sunday = parse_window("Sun 03:30 for 1h30")
    # Sunday 2025-01-12 06:00, after this week's window: next is a week later.
    after = dt.datetime(2025, 1, 12, 6, 0, tzinfo=berlin)
    assert next_start([sunday], after, berlin) == dt.datetime(2025, 1, 19, 3, 30, tzinfo=berlin)
    weekdays = parse_window("Mon..Fri 02:00 for 45m")
    friday_night = dt.datetime(2025, 1, 17, 23, 0, tzinfo=berlin)
    assert next_start([weekdays], friday_night, berlin) == dt.datetime(2025, 1, 20, 2, 0, tzinfo=berlin)
    # The earliest of several windows wins.
    assert next_start([sunday, weekdays], friday_night, berlin).day == 19


def test_next_start_skips_the_window_already_open(berlin: zoneinfo.ZoneInfo) -> None:
    sunday = parse_window("Sun 03:30 for 1h30")
    inside = dt.datetime(2025, 1, 12, 4, 0, tzinfo=berlin)
    assert current([sunday], inside, berlin) is sunday
    assert next_start([sunday], inside, berlin) == dt.datetime(2025, 1, 19, 3, 30, tzinfo=berlin)


def test_window_open_from_start_until_end_exclusive(berlin: zoneinfo.ZoneInfo) -> None:
    sunday = parse_window("Sun 03:30 for 1h30")
    day = dt.date(2025, 1, 12)

    def at(hour: int, minute: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=berlin)

    assert current([sunday], at(3, 29), berlin) is None
    assert current([sunday], at(3, 30), berlin) is sunday
    assert current([sunday], at(4, 59), berlin) is sunday
    assert current([sunday], at(5, 0), berlin) is None
    assert sunday.span_at(at(4, 0), berlin) == (at(3, 30), at(5, 0))


def test_window_spanning_midnight_is_open_the_next_day(berlin: zoneinfo.ZoneInfo) -> None:
    late = parse_window("Sat 23:00 for 2h")
    assert current([late], dt.datetime(2025, 1, 12, 0, 30, tzinfo=berlin), berlin) is late   # Sunday
    assert current([late], dt.datetime(2025, 1, 12, 1, 0, tzinfo=berlin), berlin) is None


def test_start_in_the_spring_gap_opens_when_the_clock_jumps(berlin: zoneinfo.ZoneInfo) -> None:
    # 2025-03-30 02:00 CET -> 03:00 CEST: 02:30 never shows on the clock.
    gap = parse_window("Sun 02:30 for 1h30")
    start = next_start([gap], dt.datetime(2025, 3, 29, 12, 0, tzinfo=berlin), berlin)
    assert start.astimezone(dt.UTC) == dt.datetime(2025, 3, 30, 1, 30, tzinfo=dt.UTC)
    assert start.strftime("%H:%M %Z") == "03:30 CEST"
    # It lasts 90 minutes of elapsed time: until 05:00 CEST.
    span = gap.span_at(dt.datetime(2025, 3, 30, 4, 59, tzinfo=berlin), berlin)
    assert span is not None
    assert span[1].strftime("%H:%M %Z") == "05:00 CEST"


def test_duration_is_elapsed_time_on_the_spring_night(berlin: zoneinfo.ZoneInfo) -> None:
    # 01:30 CET + 1h30 of real time is 04:00 CEST on the clock, not 03:00.
    night = parse_window("Sun 01:30 for 1h30")
    assert current([night], dt.datetime(2025, 3, 30, 3, 30, tzinfo=berlin), berlin) is night
    assert current([night], dt.datetime(2025, 3, 30, 4, 0, tzinfo=berlin), berlin) is None


def test_repeated_autumn_hour_does_not_reopen_the_window(berlin: zoneinfo.ZoneInfo) -> None:
    # 2025-10-26 03:00 CEST -> 02:00 CET: 02:30 shows twice; the window opens at the first.
    autumn = parse_window("Sun 02:30 for 1h")
    start = next_start([autumn], dt.datetime(2025, 10, 25, 12, 0, tzinfo=berlin), berlin)
    assert start.astimezone(dt.UTC) == dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC)
    first_0245 = dt.datetime(2025, 10, 26, 0, 45, tzinfo=dt.UTC)    # 02:45 CEST
    second_0245 = dt.datetime(2025, 10, 26, 1, 45, tzinfo=dt.UTC)   # 02:45 CET, an hour later
    assert current([autumn], first_0245, berlin) is autumn
    assert current([autumn], second_0245, berlin) is None


def test_decisions_follow_the_zone_not_utc() -> None:
    new_york = zoneinfo.ZoneInfo("America/New_York")
    sunday = parse_window("Sun 03:30 for 1h")
    # 08:45 UTC on Sunday 2025-01-12 is 03:45 EST.
    now = dt.datetime(2025, 1, 12, 8, 45, tzinfo=dt.UTC)
    assert current([sunday], now, new_york) is sunday
    assert current([sunday], now, dt.UTC) is None


def test_naive_now_and_no_windows_are_refused(berlin: zoneinfo.ZoneInfo) -> None:
    sunday = parse_window("Sun 03:30 for 1h30")
    with pytest.raises(ValueError, match="timezone-aware"):
        current([sunday], dt.datetime(2025, 1, 12, 4, 0), berlin)   # naive on purpose
    with pytest.raises(ConfigError) as caught:
        next_start([], dt.datetime(2025, 1, 12, 4, 0, tzinfo=berlin), berlin)
    assert caught.value.message == "no maintenance windows configured"


def test_local_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert local_zone() == zoneinfo.ZoneInfo("Europe/Berlin")
    monkeypatch.setenv("TZ", "Nowhere/Atlantis")
    zone = local_zone()   # falls back to /etc/localtime (or the fixed offset) instead of failing
    assert dt.datetime(2025, 1, 1, tzinfo=zone).utcoffset() is not None
