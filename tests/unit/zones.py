"""Zones from the system tz database for the window and schedule tests (skipped with the reason when it
lacks them); the `berlin` fixture is re-exported by the conftests that need it."""

from __future__ import annotations

import zoneinfo

import pytest


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip(f"the tz database (Debian package tzdata) has no {name}")


@pytest.fixture
def berlin() -> zoneinfo.ZoneInfo:
    """Europe/Berlin: DST starts 2025-03-30 02:00 -> 03:00 and ends 2025-10-26 03:00 -> 02:00."""
    return zone("Europe/Berlin")
