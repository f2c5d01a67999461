"""The notification hub: every event goes through :meth:`Notifications.emit`, which never raises.

Delivery, decided here once for every caller: the log channel runs inline (a log line and one audit
record, local and fast, and the audit trail keeps the order of events). Webhooks and commands run on
**one background worker** fed by a bounded queue, so a slow or dead receiver never holds a repair,
a reboot or a rollback: ``emit`` only enqueues. Strict short timeouts alone would not do: with retries,
a dead webhook would still cost the repair ``(retries + 1) * timeout`` per event. A full queue drops the
new event (logged and audited) instead of growing without bound, and :meth:`Notifications.close`
gives the queue ``flush_timeout_s`` to drain when the process ends (the worker is a daemon thread, so
a receiver that never answers cannot keep vmrepair from exiting). Every delivery failure is logged and
audited with the channel's name, never raised.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.errors import AuditError, NotifyError
from orchestrator.notify.channels import Channel
from orchestrator.notify.event import Event, EventKind

log = logging.getLogger(__name__)

Route = Callable[[EventKind], Sequence[str]]


class Notifications:
    """Routes each event to its channels (``route(kind)`` → channel names) and delivers it."""

    def __init__(self, channels: Mapping[str, Channel], route: Route, audit: AuditSink, *,
                 queue_size: int = 200, flush_timeout_s: float = 15.0) -> None:
        self._channels = dict(channels)
        self._route = route
        self._audit = audit
        self._queue: queue.Queue[tuple[Channel, Event] | None] = queue.Queue(maxsize=queue_size)
        self.flush_timeout_s = flush_timeout_s
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def channels_for(self, kind: EventKind) -> list[str]:
        return [name for name in self._route(kind) if name in self._channels]

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to its channels: inline ones now, the others in the background. Never
        raises: a failure (or a full queue) is logged and audited."""
        try:
            names = self.channels_for(event.kind)
        except Exception as exc:  # noqa: BLE001 - a routing bug must not fail a repair either
            self._failed("route", event, f"{type(exc).__name__}: {exc}")
            return
        for name in names:
            channel = self._channels[name]
            if channel.is_inline:
                self._deliver(channel, event)
            else:
                self._enqueue(channel, event)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued event was delivered (or failed); False when ``timeout_s`` (default
        ``flush_timeout_s``) passed first."""
        deadline = time.monotonic() + (self.flush_timeout_s if timeout_s is None else timeout_s)
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self) -> None:
        """Flush (within ``flush_timeout_s``), then stop the worker. Events still queued are lost: that
        is logged and audited once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        if worker is None:
            return
        if not self.flush():
            left = self._queue.qsize()
            log.warning("%d notification(s) not delivered within %g s at exit", left, self.flush_timeout_s)
            self._audit_quietly("notifications not delivered at exit", pending=left)
        # The worker's stop sign; with the queue still full it is a daemon thread and dies with us.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _enqueue(self, channel: Channel, event: Event) -> None:
        with self._lock:
            if self._closed:
                self._failed(channel.name, event, "notifications are closed (vmrepair is exiting)")
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="vmrepair-notify", daemon=True)
                self._worker.start()
        try:
            self._queue.put_nowait((channel, event))
        except queue.Full:
            self._failed(channel.name, event, f"dropped: {self._queue.maxsize} notifications already "
                         "wait for delivery")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, channel: Channel, event: Event) -> None:
        try:
            channel.deliver(event)
        except NotifyError as exc:
            self._failed(channel.name, event, exc.message)
        except Exception as exc:  # noqa: BLE001 - a channel's bug must not fail a repair either
            self._failed(channel.name, event, f"{type(exc).__name__}: {exc}")

    def _failed(self, channel: str, event: Event, message: str) -> None:
        log.warning("notification %s to %s failed for %s: %s", event.kind, channel, event.target, message)
        self._audit_quietly(f"notify failed: {message}", channel=channel, kind=str(event.kind),
                            target=event.target, about=event.component, session=event.session_id)

    def _audit_quietly(self, message: str, **details: object) -> None:
        try:
            log_error(self._audit, "notify", message, **details)
        except Exception as exc:  # noqa: BLE001 - the audit sink failing must not fail a repair either
            text = exc.message if isinstance(exc, AuditError) else f"{type(exc).__name__}: {exc}"
            log.error("cannot audit a notification failure: %s", text)  # noqa: TRY400 - expected, no trace
