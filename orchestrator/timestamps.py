"""The one timestamp format of vmrepair: RFC 3339 in UTC with ``Z``, to the second.

``2026-12-06T20:15:14Z`` is what every table, report, audit record, state row, JSON answer and
notification shows and stores from now on: one form that sorts as text, that ``grep`` and ``jq``
users can match, and that a person reads without guessing the zone. Sub-second digits bought nothing
(ordering is by row id, journal sequence or file line, durations are measured with a monotonic clock)
and made the same moment look different in two places.

Older state holds other forms that vmrepair wrote before (``+00:00`` offsets, milliseconds or
microseconds): :func:`parse_timestamp` reads all of them, so nothing persisted has to be migrated. The
compact ``20260102T030405Z`` inside session, package and quarantine ids is a name, not a timestamp,
and stays as it is.
"""

from __future__ import annotations

import datetime as dt

#: ``strftime`` form of the one format (applied to a UTC moment).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_timestamp(moment: dt.datetime) -> str:
    """``moment`` as ``2026-12-06T20:15:14Z`` (fractions of a second dropped, not rounded).

    Raises:
        ValueError: ``moment`` has no time zone: it could be any instant, so it is refused rather
            than guessed (every moment vmrepair makes is aware).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp without a time zone: {moment.isoformat()}")
    return moment.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def now_timestamp() -> str:
    """The current time in the one format."""
    return format_timestamp(dt.datetime.now(dt.UTC))


def epoch_timestamp(seconds: float) -> str:
    """A Unix time (``time.time()``, a file's mtime) in the one format."""
    return format_timestamp(dt.datetime.fromtimestamp(seconds, dt.UTC))


def parse_timestamp(text: str) -> dt.datetime | None:
    """An aware UTC moment from any form vmrepair stored (``Z`` or an offset, with or without
    fractions of a second); None for text that is no timestamp or has no zone."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(dt.UTC)


def shown_timestamp(text: str) -> str | None:
    """A stored timestamp re-written in the one format for display; None when ``text`` is none."""
    moment = parse_timestamp(text)
    return None if moment is None else format_timestamp(moment)
