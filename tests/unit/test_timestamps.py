"""The one timestamp format, and reading every form vmrepair stored before it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator import timestamps
from orchestrator.timestamps import (
    epoch_timestamp,
    format_timestamp,
    now_timestamp,
    parse_timestamp,
    shown_timestamp,
)

ONE_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PACKAGE = Path(timestamps.__file__).parent


def test_format_is_utc_seconds_with_z() -> None:
    berlin = dt.datetime(2026, 3, 29, 3, 30, 15, 987654, tzinfo=ZoneInfo("Europe/Berlin"))
    assert format_timestamp(berlin) == "2026-03-29T01:30:15Z"  # CEST is UTC+2; fractions dropped


def test_a_moment_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timestamp without a time zone: 2026-01-02T03:04:05"):
        format_timestamp(dt.datetime(2026, 1, 2, 3, 4, 5))


def test_now_and_epoch() -> None:
    assert ONE_FORM.fullmatch(now_timestamp())
    assert epoch_timestamp(0) == "1970-01-01T00:00:00Z"
    assert epoch_timestamp(1767323045.75) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("stored", [
    "2026-01-02T03:04:05Z",                 # the one format
    "2026-01-02T03:04:05+00:00",            # images, layers, fix packages, quarantine before it
    "2026-01-02T03:04:05.678+00:00",        # sessions, state rows, reboots (milliseconds)
    "2026-01-02T03:04:05.678901+00:00",     # audit log records (microseconds)
    "2026-01-02T04:04:05+01:00",            # reboot notifications (the reboot time zone)
])
def test_every_stored_form_reads_back_as_the_same_second(stored: str) -> None:
    moment = parse_timestamp(stored)
    assert moment is not None
    assert moment.tzinfo is dt.UTC
    assert shown_timestamp(stored) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-02T03:04:05"])
def test_text_that_is_no_zoned_timestamp_is_none(text: str) -> None:
    assert parse_timestamp(text) is None
    assert shown_timestamp(text) is None


def test_old_and_new_forms_compare_as_text_to_the_second() -> None:
    """Rows of both forms are compared as strings (pipeline/budget.py): across seconds the order holds."""
    old, new = "2026-01-02T03:04:05.999+00:00", "2026-01-02T03:04:06Z"
    assert old < new
    assert old > "2026-01-02T03:04:04Z"


def test_no_module_formats_a_timestamp_on_its_own() -> None:
    """isoformat()/strftime of a moment belong in orchestrator/timestamps.py; the compact forms in ids
    (20260102T030405Z) and the agent (which runs on the target without this package) are exempt."""
    allowed = {PACKAGE / "timestamps.py", PACKAGE / "agent/remote/vmrepair_agent.py"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.isoformat\(|strftime\(\"%Y-%m-%d|%H:%M:%S\"", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []
