"""Moments for people: the ``AT`` of ``vmrepair reboot schedule AT`` and the ``when`` column of
``vmrepair reboot status``."""

from __future__ import annotations

import datetime as dt
import re

from orchestrator.errors import ConfigError
from orchestrator.timestamps import format_timestamp

#: Shown under every "cannot read AT" error.
AT_FORMS = ("use HH:MM (its next occurrence, e.g. 03:30) or ISO-8601 such as 2025-03-30T03:30 or "
            "2025-03-30T03:30+02:00 (without an offset: the reboot time zone)")
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


def parse_at(text: str, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """``HH:MM`` -> its next occurrence after ``now``; ISO-8601 as given (without an offset: in ``tz``).

    Raises:
        ConfigError: the text is neither form, or the moment is not after ``now``.
    """
    text = text.strip()
    clock = _CLOCK_RE.fullmatch(text)
    if clock is not None:
        hour, minute = int(clock[1]), int(clock[2])
        if hour > 23 or minute > 59:
            raise ConfigError(f"cannot read {text!r} as a time: not between 00:00 and 23:59",
                              remedy=AT_FORMS)
        today = now.astimezone(tz).date()
        for day in (today, today + dt.timedelta(days=1), today + dt.timedelta(days=2)):
            candidate = _wall(day, dt.time(hour, minute), tz)
            if _utc(candidate) > _utc(now):
                return candidate
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a time", remedy=AT_FORMS) from None
    if moment.tzinfo is None:
        moment = _wall(moment.date(), moment.time(), tz)
    if _utc(moment) <= _utc(now):
        raise ConfigError(
            f"{text!r} is in the past ({format_moment(moment, tz)}; now is {format_moment(now, tz)})",
            remedy="give a later time, or `vmrepair reboot now --target T` to reboot at once")
    return moment.astimezone(tz)


def format_moment(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """``2025-03-30T01:30:00Z (Sun 03:30 CEST)``: the one timestamp format, then the wall clock of
    the reboot time zone, because windows and ``reboot schedule 03:30`` are given in that zone and an
    operator checks a reboot against them."""
    local = moment.astimezone(tz).strftime("%a %H:%M %Z").strip()
    return f"{format_timestamp(moment)} ({local})"


def format_delta(delta: dt.timedelta) -> str:
    """``<1m``, ``45m``, ``2h05m``, ``3d04h``."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _utc(moment: dt.datetime) -> dt.datetime:
    """Python compares two datetimes of the same tzinfo by wall time (wrong across a DST fold): use UTC."""
    return moment.astimezone(dt.UTC)


def _wall(day: dt.date, time: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """A wall-clock time in ``tz``, normalised through UTC so a time in the DST gap becomes a real one."""
    return dt.datetime.combine(day, time, tzinfo=tz).astimezone(dt.UTC).astimezone(tz)
