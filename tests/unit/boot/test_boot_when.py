"""`vmrepair reboot schedule AT`: HH:MM means its next occurrence, ISO-8601 as given, never the past."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from orchestrator.boot.when import AT_FORMS, format_delta, format_moment, parse_at
from orchestrator.errors import ConfigError


def test_hh_mm_later_today_or_tomorrow(berlin: zoneinfo.ZoneInfo) -> None:
    now = dt.datetime(2025, 1, 15, 10, 0, tzinfo=berlin)
    assert parse_at("22:15", now, berlin) == dt.datetime(2025, 1, 15, 22, 15, tzinfo=berlin)
    assert parse_at("9:59", now, berlin) == dt.datetime(2025, 1, 16, 9, 59, tzinfo=berlin)
    assert parse_at("10:00", now, berlin) == dt.datetime(2025, 1, 16, 10, 0, tzinfo=berlin)


def test_hh_mm_in_the_dst_gap_becomes_a_real_time(berlin: zoneinfo.ZoneInfo) -> None:
    now = dt.datetime(2025, 3, 30, 1, 0, tzinfo=berlin)
    at = parse_at("02:30", now, berlin)
    assert format_moment(at, berlin) == "2025-03-30T01:30:00Z (Sun 03:30 CEST)"


def test_iso_with_and_without_offset(berlin: zoneinfo.ZoneInfo) -> None:
    now = dt.datetime(2025, 1, 15, 10, 0, tzinfo=berlin)
    assert parse_at("2025-01-20T03:30", now, berlin) == dt.datetime(2025, 1, 20, 3, 30, tzinfo=berlin)
    utc = parse_at("2025-01-20T03:30Z", now, berlin)
    assert utc.astimezone(dt.UTC) == dt.datetime(2025, 1, 20, 3, 30, tzinfo=dt.UTC)
    assert utc.tzinfo is berlin


@pytest.mark.parametrize(("text", "message"), [
    ("tomorrow", "cannot read 'tomorrow' as a time"),
    ("25:00", "cannot read '25:00' as a time: not between 00:00 and 23:59"),
    ("2025-13-01T00:00", "cannot read '2025-13-01T00:00' as a time"),
])
def test_unreadable_at_names_the_forms(berlin: zoneinfo.ZoneInfo, text: str, message: str) -> None:
    now = dt.datetime(2025, 1, 15, 10, 0, tzinfo=berlin)
    with pytest.raises(ConfigError) as caught:
        parse_at(text, now, berlin)
    assert caught.value.message == message
    assert caught.value.remedy == AT_FORMS


def test_past_times_are_refused(berlin: zoneinfo.ZoneInfo) -> None:
    now = dt.datetime(2025, 1, 15, 10, 0, tzinfo=berlin)
    with pytest.raises(ConfigError) as caught:
        parse_at("2025-01-15T09:59", now, berlin)
    assert caught.value.message == ("'2025-01-15T09:59' is in the past (2025-01-15T08:59:00Z (Wed 09:59 CET);"
                                    " now is 2025-01-15T09:00:00Z (Wed 10:00 CET))")
    assert "vmrepair reboot now" in (caught.value.remedy or "")


@pytest.mark.parametrize(("seconds", "text"), [
    (20, "<1m"), (60, "1m"), (45 * 60, "45m"), (2 * 3600 + 5 * 60, "2h05m"), (3 * 86400 + 4 * 3600, "3d04h"),
])
def test_format_delta(seconds: int, text: str) -> None:
    assert format_delta(dt.timedelta(seconds=seconds)) == text
