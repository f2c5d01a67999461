"""When a target may reboot: the policy rules, the operator's actions, and what people are told.

Policies (``reboot.policy`` in config.yaml, or a per-request override):

- ``prompt``     the reboot waits for the operator (``vmrepair reboot now|schedule``): ``waiting_operator``
- ``automatic``  ``scheduled`` for *now + notice_s*; the notice goes out at once
- ``window``     ``scheduled`` for the next maintenance window (:mod:`orchestrator.boot.window`)

:meth:`RebootScheduler.due` decides from the wall clock at each call and never from a time computed
earlier: a clock that jumped past a window makes the reboot wait for the next one, a clock that jumped
into one lets it go now, and a clock that jumps back cannot repeat a reboot, because a reboot leaves the
open states for good the moment the executor marks it ``rebooting``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.audit.sink import AuditSink, NullAuditSink
from orchestrator.boot.when import format_delta, format_moment
from orchestrator.boot.window import Window, current, local_zone, next_start, parse_windows
from orchestrator.config.reboot import REBOOT_POLICIES, RebootSettings
from orchestrator.errors import ConfigError, NotifyError, RebootError
from orchestrator.notify.build import RebootBridge
from orchestrator.reboot.notify import Notifier, RebootEvent
from orchestrator.reboot.store import FINAL, IN_PROGRESS, OPEN, RebootRecord, RebootStore
from orchestrator.state.db import StateDb
from orchestrator.targets.spec import parse_target
from orchestrator.timestamps import format_timestamp

if TYPE_CHECKING:
    from orchestrator.app import App

log = logging.getLogger(__name__)

#: States the executor may set with :meth:`RebootScheduler.mark`.
EXECUTOR_STATES = (IN_PROGRESS, *FINAL)
#: Separates the window texts stored with a reboot (no valid window contains it).
WINDOW_SEPARATOR = "; "


class RebootScheduler:
    """Raises (every method): StateError / StateCorruptError from the store; ConfigError for a target
    that does not parse; RebootError as listed per method."""

    def __init__(self, db: StateDb, settings: RebootSettings, notifier: Notifier,
                 clock: Callable[[], dt.datetime] | None = None, *, tz: dt.tzinfo | None = None,
                 audit: AuditSink | None = None) -> None:
        """``clock`` gives zone-aware wall-clock times (default: now in ``tz``); ``tz`` is the zone
        windows and times are read in (default: ``reboot.timezone``, else this host's zone)."""
        self.store = RebootStore(db)
        self.settings = settings
        self.notifier = notifier
        self.tz = tz or reboot_zone(settings)
        zone = self.tz
        self.clock = clock or (lambda: dt.datetime.now(zone))
        self.audit = audit or NullAuditSink()

    def request(self, target: str, *, txn_id: str | None, reason: str, policy: str | None = None,
                notice_s: float | None = None) -> RebootRecord:
        """Ask for a reboot of ``target`` to finish ``txn_id``; joins the target's open reboot if any
        (which keeps its policy and time: people were told of them). ``policy`` and ``notice_s``
        override the configured ones for this request.

        Raises:
            RebootError: unknown policy, or policy ``window`` without windows.
        """
        target, chosen, now = _normal(target), policy or self.settings.policy, self._now()
        if chosen not in REBOOT_POLICIES:
            raise RebootError(f"unknown reboot policy {chosen!r} (use {', '.join(REBOOT_POLICIES)})")
        notice = self.settings.notice_s if notice_s is None else max(0.0, notice_s)
        state, not_before, window = "waiting_operator", None, ""
        if chosen == "automatic":
            state, not_before = "scheduled", now + dt.timedelta(seconds=notice)
        elif chosen == "window":
            if not self.settings.windows:
                raise RebootError("policy `window` but no maintenance windows are configured",
                                  remedy="set `reboot: {windows: [\"Sun 03:30 for 1h30\"]}` in config.yaml")
            state, window = "scheduled", WINDOW_SEPARATOR.join(self.settings.windows)
        record, joined = self.store.join_or_create(
            target=target, txn_id=txn_id, reason=reason, policy=chosen, state=state,
            not_before=not_before, window=window, now=now)
        record = self._described(record, now)
        self._audit("reboot_joined" if joined else "reboot_requested", record)
        # A joined fix rides on a reboot people were already told about: no second notice.
        if not joined:
            self._announce(record, now)
        return record

    def due(self, target: str | None = None) -> list[RebootRecord]:
        """Scheduled reboots that may happen now (never one for a target already rebooting)."""
        now = self._now()
        busy = {r.target for r in self.store.find(states=(IN_PROGRESS,))}
        wanted = None if target is None else _normal(target)
        return [self._described(r, now) for r in self.store.find(states=("scheduled",), target=wanted)
                if r.target not in busy and self._is_due(r, now)]

    def approve_now(self, target: str) -> RebootRecord:
        """The operator says: reboot as soon as the executor runs.

        Raises:
            RebootError: nothing pending for ``target`` (or its reboot is already in progress).
        """
        record, now = self._pending(target, "approved"), self._now()
        moved = self.store.move(record, "scheduled", now=now, not_before=now, window="")
        self._audit("reboot_approved", moved)
        return self._described(moved, now)

    def schedule_at(self, target: str, at: dt.datetime) -> RebootRecord:
        """The operator picks the moment; the new time is announced.

        Raises:
            RebootError: ``at`` is not in the future, or nothing pending for ``target``.
        """
        now = self._now()
        if at.tzinfo is None:
            raise RebootError(f"cannot schedule a reboot at {at}: the time has no zone")
        if at.astimezone(dt.UTC) <= now.astimezone(dt.UTC):
            raise RebootError(f"cannot schedule a reboot at {format_moment(at, self.tz)}: that is in the "
                              f"past (now is {format_moment(now, self.tz)})",
                              remedy="give a later time, or use `vmrepair reboot now --target T`")
        record = self._pending(target, "rescheduled")
        moved = self._described(self.store.move(record, "scheduled", now=now, not_before=at, window=""), now)
        self._audit("reboot_rescheduled", moved)
        self._announce(moved, now)
        return moved

    def cancel(self, target: str) -> RebootRecord:
        """Raises: RebootError when nothing is pending for ``target``."""
        record, now = self._pending(target, "cancelled"), self._now()
        moved = self._described(self.store.move(record, "cancelled", now=now), now)
        self._audit("reboot_cancelled", moved)
        return moved

    def mark(self, record_id: int, state: str, error: str = "") -> RebootRecord:
        """The executor's progress: ``rebooting``, then ``done``, ``failed`` or ``unreachable``
        (or ``cancelled`` before it started).

        Raises:
            RebootError: unknown state, no such record, or a move its state does not allow.
        """
        if state not in EXECUTOR_STATES:
            raise RebootError(f"cannot mark a reboot {state!r} (use {', '.join(EXECUTOR_STATES)})")
        now, record = self._now(), self.store.get(record_id)
        if record.state == state and not error:
            return self._described(record, now)   # idempotent: a retried mark after a crash is harmless
        moved = self._described(self.store.move(record, state, now=now, error=error), now)
        self._audit("reboot_" + state, moved, error=error)
        return moved

    def status(self, target: str | None = None) -> list[RebootRecord]:
        """Open and in-progress reboots, plus the last finished one of each target."""
        now, wanted = self._now(), None if target is None else _normal(target)
        found = {r.id: r for r in self.store.find(states=(*OPEN, IN_PROGRESS), target=wanted)}
        found.update({r.id: r for r in self.store.latest_final(wanted)})
        return [self._described(found[key], now) for key in sorted(found)]

    # -- rules --------------------------------------------------------------------------------------

    def _is_due(self, record: RebootRecord, now: dt.datetime) -> bool:
        moment = record.not_before_at
        if moment is not None:
            return now.astimezone(dt.UTC) >= moment
        windows = self._windows(record)
        return bool(windows) and current(windows, now, self.tz) is not None

    def _windows(self, record: RebootRecord) -> tuple[Window, ...]:
        """The windows announced with the reboot: a later config change does not move it silently."""
        try:
            return parse_windows(filter(None, record.window.split(WINDOW_SEPARATOR)))
        except ConfigError as exc:
            # Written by an older vmrepair whose grammar differed: fall back rather than never reboot.
            log.warning("reboot #%s: stored window unreadable (%s); using the configured windows",
                        record.id, exc.message)
            return parse_windows(self.settings.windows)

    def _pending(self, target: str, verb: str) -> RebootRecord:
        name = _normal(target)
        found = self.store.find(states=OPEN, target=name)
        if found:
            return found[0]
        if self.store.find(states=(IN_PROGRESS,), target=name):
            raise RebootError(f"the reboot of {name} is already in progress; it can no longer be {verb}",
                              remedy="see `vmrepair reboot status`")
        raise RebootError(f"nothing pending for {name}", remedy="see `vmrepair reboot status`")

    # -- what people see ----------------------------------------------------------------------------

    def _described(self, record: RebootRecord, now: dt.datetime) -> RebootRecord:
        return dataclasses.replace(record, when=self._when(record, now))

    def _when(self, record: RebootRecord, now: dt.datetime) -> str:
        if record.state == "waiting_operator":
            return "when the operator approves (`vmrepair reboot now` or `vmrepair reboot schedule AT`)"
        if record.state == IN_PROGRESS:
            return f"in progress since {self._fmt_iso(record.updated_at)}"
        if record.state != "scheduled":
            return f"{record.state} at {self._fmt_iso(record.updated_at)}"
        return self._when_scheduled(record, now)

    def _when_scheduled(self, record: RebootRecord, now: dt.datetime) -> str:
        moment = record.not_before_at
        if moment is not None:
            if now.astimezone(dt.UTC) >= moment:
                return f"now (due since {format_moment(moment, self.tz)})"
            return f"at {format_moment(moment, self.tz)} (in {_until(moment, now)})"
        windows = self._windows(record)
        for window in windows:
            span = window.span_at(now, self.tz)
            if span is not None:
                return f"now, in window {window} (until {format_moment(span[1], self.tz)})"
        start = next_start(windows, now, self.tz)
        return f"next window {format_moment(start, self.tz)} (in {_until(start, now)}; {record.window})"

    def _fmt_iso(self, text: str) -> str:
        return format_moment(dt.datetime.fromisoformat(text), self.tz)

    def _announce(self, record: RebootRecord, now: dt.datetime) -> None:
        target = record.target
        what = f"fix {record.txn_id}" if record.txn_id else "a fix"
        cancel = f"cancel with `vmrepair reboot cancel --target {target}`"
        if record.state == "waiting_operator":
            message = (f"{target} needs a reboot to finish {what} ({record.reason}); it waits for the "
                       f"operator: `vmrepair reboot now --target {target}` or `vmrepair reboot schedule "
                       f"HH:MM --target {target}`; {cancel}")
        else:
            message = f"{target} will reboot {record.when} to finish {what} ({record.reason}); {cancel}"
        moment = record.not_before_at
        if moment is None and record.window:
            span = current(self._windows(record), now, self.tz)
            moment = now if span is not None else next_start(self._windows(record), now, self.tz)
        event = RebootEvent("reboot_scheduled", target, message, txn_id=record.txn_id,
                            support_ref=record.support_ref, at=format_timestamp(now),
                            reboot_at=None if moment is None else format_timestamp(moment))
        try:
            self.notifier.notify(event)
        except NotifyError as exc:
            # The composite never raises; a bare notifier might. The reboot is recorded either way.
            log.warning("reboot notice for %s not delivered: %s", target, exc.message)

    def _audit(self, event: str, record: RebootRecord, **details: Any) -> None:
        self.audit.record(event, component="reboot", status=record.state, durable=True,
                          details={"id": record.id, "target": record.target, "txn_id": record.txn_id,
                                   "policy": record.policy, "when": record.when, **details})

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise RebootError("the scheduler's clock must give timezone-aware times")
        return now


def reboot_zone(settings: RebootSettings) -> dt.tzinfo:
    """The zone windows and ``HH:MM`` are read in: ``reboot.timezone``, else this host's zone."""
    if settings.timezone:
        import zoneinfo

        return zoneinfo.ZoneInfo(settings.timezone)
    return local_zone()


def scheduler_for(app: App, *, audit: AuditSink | None = None, db: StateDb | None = None) -> RebootScheduler:
    """The scheduler on the app's state store (or ``db``, e.g. the read-only ``app.state_view``), with
    the app's notification hub and the wall clock."""
    settings = app.settings.reboot
    sink = audit or app.quiet_audit
    return RebootScheduler(app.state if db is None else db, settings, RebootBridge(app.notifier), audit=sink)


def _until(moment: dt.datetime, now: dt.datetime) -> str:
    # Through UTC: two datetimes of the same zone subtract by wall time, an hour off across DST.
    return format_delta(moment.astimezone(dt.UTC) - now.astimezone(dt.UTC))


def _normal(target: str) -> str:
    """One spelling per target (``ssh://u@h`` and ``ssh://u@h:22`` are the same host)."""
    return str(parse_target(target))
