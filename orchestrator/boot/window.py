"""Maintenance windows in the style of openSUSE's rebootmgr (``window-start`` + ``window-duration``),
written as one line: ``"Sun 03:30 for 1h30"``.

Grammar (case-insensitive, parts separated by spaces)::

    [DAYS] [*-*-*] H:MM for DURATION
    DAYS      daily | * | DAY | DAY..DAY | a comma list of those (Sat,Sun   Mon..Wed,Fri)
    DAY       Mon Tue Wed Thu Fri Sat Sun (or the full English name)
    DURATION  1h30 | 1h30m | 2h | 90m | 45min            (more than 0, at most 7 days)

No DAYS means every day, as rebootmgr's ``window-start=3:30``. A range may wrap (``Sat..Mon``).

Time semantics: a window opens at its wall-clock time in the local zone and stays open for DURATION of
*elapsed* time. A start time that does not exist (the spring DST gap) opens the window when the clock
would show it in the old offset, i.e. shifted by the gap (Sun 02:30 -> 03:30 CEST); a start time that
exists twice (autumn) opens it at the first. Nothing here keeps state: callers ask :func:`current` and
:func:`next_start` with the wall clock of *now* at every check, so a clock that jumped (NTP step, manual
set, resume from suspend) is simply followed and no earlier computation is trusted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError

log = logging.getLogger(__name__)

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    full: i for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
EVERY_DAY = frozenset(range(7))
MAX_DURATION = dt.timedelta(days=7)
#: Shown under every "invalid maintenance window" error.
ACCEPTED_FORMS = ("use `[DAYS] HH:MM for DURATION`, e.g. `Sun 03:30 for 1h30`, `Mon..Fri 02:00 for 45m`, "
                  "`daily 04:00 for 2h`; DAYS: daily, Sun, Mon..Fri, Sat,Sun; DURATION: 1h30, 2h, 90m")

_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")
_DURATION_RE = re.compile(
    r"(?P<h>\d{1,3})h(?:(?P<hm>\d{1,2})(?:m|min)?)?|(?P<m>\d{1,5})(?:m|min)", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """One weekly (or daily) maintenance window; ``text`` is what the user wrote."""

    text: str
    weekdays: frozenset[int]   # 0 = Monday, as datetime.weekday()
    start: dt.time
    duration: dt.timedelta

    def __str__(self) -> str:
        return self.text

    def span_at(
        self, now: dt.datetime, tz: dt.tzinfo | None = None
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """(start, end) in ``tz`` of the occurrence that contains ``now``, or None."""
        zone = tz or local_zone()
        at = _utc(now)
        today = at.astimezone(zone).date()
        # An occurrence containing now started at most `duration` ago: scan back that many days (plus
        # one for the offset change a DST day can add), newest first so the latest end wins.
        for back in range(self.duration.days + 3):
            start, end = self._occurrence(today - dt.timedelta(days=back), zone)
            if start is not None and start <= at < end:
                return start.astimezone(zone), end.astimezone(zone)
        return None

    def next_start(self, now: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime:
        """The first start strictly after ``now`` (an occurrence already open does not count)."""
        zone = tz or local_zone()
        at = _utc(now)
        today = at.astimezone(zone).date()
        # Every window has at least one weekday, so eight days ahead always hold a start.
        for ahead in range(-1, 9):
            start, _end = self._occurrence(today + dt.timedelta(days=ahead), zone)
            if start is not None and start > at:
                return start.astimezone(zone)
        raise AssertionError(f"window {self.text!r} has no start within a week")  # pragma: no cover

    def _occurrence(self, day: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime | None, dt.datetime]:
        """The occurrence that opens on ``day`` as UTC (start, end); start None when not that day.

        Arithmetic is done in UTC on purpose: Python adds and compares two datetimes of the *same*
        tzinfo by wall time, which would make a 1h30 window on a DST night last 30 or 150 minutes.
        """
        # fold=0: the first of an ambiguous time; a time in the gap maps with the pre-gap offset.
        start = dt.datetime.combine(day, self.start, tzinfo=zone).astimezone(dt.UTC)
        if day.weekday() not in self.weekdays:
            return None, start
        return start, start + self.duration


def parse_window(text: str) -> Window:
    """Parse one window.

    Raises:
        ConfigError: the text does not follow the grammar; names the text, the problem and the forms.
    """
    tokens = text.split()
    lowered = [token.lower() for token in tokens]
    if lowered.count("for") != 1:
        raise _invalid(text, "expected `H:MM for DURATION`" if tokens else "it is empty")
    split = lowered.index("for")
    head, tail = tokens[:split], tokens[split + 1:]
    if not head:
        raise _invalid(text, "the start time is missing before `for`")
    start = _parse_time(text, head[-1])
    rest = head[:-1]
    if rest and rest[-1] == "*-*-*":   # systemd calendar spelling, as rebootmgr's window-start accepts
        rest = rest[:-1]
    weekdays = _parse_days(text, "".join(rest)) if rest else EVERY_DAY
    duration = parse_duration("".join(tail), window=text)
    return Window(" ".join(tokens), weekdays, start, duration)


def parse_windows(texts: Iterable[str]) -> tuple[Window, ...]:
    """Raises: ConfigError for the first invalid text."""
    return tuple(parse_window(text) for text in texts)


def parse_duration(text: str, *, window: str | None = None) -> dt.timedelta:
    """``1h30``, ``1h30m``, ``2h``, ``90m``, ``45min`` -> timedelta.

    Raises:
        ConfigError: not one of those forms, zero, or longer than :data:`MAX_DURATION`.
    """
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        why = f"duration {text!r} is not like 1h30, 2h or 90m" if text else "the duration is missing"
        raise _invalid(window or text, why)
    minutes = int(match["h"] or 0) * 60 + int(match["hm"] or 0) + int(match["m"] or 0)
    if match["hm"] is not None and int(match["hm"]) >= 60:
        raise _invalid(window or text, f"duration {text!r}: minutes after `h` must be below 60")
    duration = dt.timedelta(minutes=minutes)
    if not dt.timedelta(0) < duration <= MAX_DURATION:
        raise _invalid(window or text, f"duration {text!r} must be more than 0 and at most 7 days")
    return duration


def current(windows: Sequence[Window], now: dt.datetime, tz: dt.tzinfo | None = None) -> Window | None:
    """The window open at ``now`` (the first listed, when several overlap), or None."""
    zone = tz or local_zone()
    return next((window for window in windows if window.span_at(now, zone) is not None), None)


def next_start(windows: Sequence[Window], now: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime:
    """The earliest window start strictly after ``now``, in ``tz`` (default: the local zone).

    Raises:
        ConfigError: ``windows`` is empty.
    """
    if not windows:
        raise ConfigError("no maintenance windows configured",
                          remedy="set `reboot: {windows: [\"Sun 03:30 for 1h30\"]}` in config.yaml")
    zone = tz or local_zone()
    return min(window.next_start(now, zone) for window in windows)


def local_zone() -> dt.tzinfo:
    """The host's zone with its DST rules: ``$TZ``, else /etc/localtime, else the current fixed offset.

    A fixed offset (what ``datetime.now().astimezone()`` gives) would be wrong across a DST change, so
    the tz database is preferred.
    """
    name = os.environ.get("TZ", "").removeprefix(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log.warning("TZ=%r is not in the tz database; using /etc/localtime", name)
    try:
        with Path("/etc/localtime").open("rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        fixed = dt.datetime.now().astimezone().tzinfo
        return fixed if fixed is not None else dt.UTC


def _parse_time(text: str, token: str) -> dt.time:
    match = _TIME_RE.fullmatch(token)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise _invalid(text, f"start time {token!r} is not H:MM between 0:00 and 23:59")
    return dt.time(int(match[1]), int(match[2]))


def _parse_days(text: str, spec: str) -> frozenset[int]:
    if spec.lower() in ("daily", "*"):
        return EVERY_DAY
    days: set[int] = set()
    for part in spec.split(","):
        first, dots, last = part.partition("..")
        begin = _day(text, first)
        end = _day(text, last) if dots else begin
        days.update(_day_range(begin, end))
    return frozenset(days)


def _day_range(begin: int, end: int) -> Iterator[int]:
    """Inclusive, wrapping past Sunday (``Sat..Mon`` is Sat, Sun, Mon)."""
    yield begin
    day = begin
    while day != end:
        day = (day + 1) % 7
        yield day


def _day(text: str, name: str) -> int:
    index = _DAY_INDEX.get(name.lower())
    if index is None:
        raise _invalid(text, f"unknown day {name!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily)")
    return index


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("maintenance windows need a timezone-aware `now`")
    return now.astimezone(dt.UTC)


def _invalid(text: str, why: str) -> ConfigError:
    return ConfigError(f"invalid maintenance window {text!r}: {why}", remedy=ACCEPTED_FORMS)
