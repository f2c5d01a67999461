"""The hub from config (``notify:``, plus the deprecated ``reboot.notifiers``), and the bridge that
carries the reboot code's :class:`~orchestrator.reboot.notify.RebootEvent` into it.

``reboot.notifiers``, when the file sets it, still works: each webhook or command becomes a channel
``reboot.N`` that receives the reboot events (scheduled, imminent, succeeded, failed, rollback, budget
exhausted) on top of what ``notify.routes`` sends them, and ``{kind: log}`` the log channel; a warning
says to move them under ``notify:``. Left at its default it adds nothing (the default route already
logs every event).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.audit.sink import AuditSink
from orchestrator.config.notify import (
    ChannelSettings,
    LogChannelSettings,
    NotifySettings,
    WebhookChannelSettings,
)
from orchestrator.config.reboot import (
    CommandNotifierSettings,
    NotifierSettings,
    RebootSettings,
    WebhookNotifierSettings,
)
from orchestrator.notify.channels import Channel, CommandChannel, LogChannel, WebhookChannel
from orchestrator.notify.event import Emitter, Event, EventKind
from orchestrator.notify.hub import Notifications
from orchestrator.retry import Sleep
from orchestrator.transport.base import Transport

if TYPE_CHECKING:
    from orchestrator.reboot.notify import RebootEvent

log = logging.getLogger(__name__)

#: The events the deprecated ``reboot.notifiers`` always received.
REBOOT_KINDS = frozenset({EventKind.REBOOT_SCHEDULED, EventKind.REBOOT_IMMINENT, EventKind.REBOOT_SUCCEEDED,
                          EventKind.REBOOT_FAILED, EventKind.ROLLBACK, EventKind.BUDGET_EXHAUSTED})


def build_notifications(notify: NotifySettings, reboot: RebootSettings, audit: AuditSink, *,
                        transport: Transport | None = None, sleep: Sleep = time.sleep) -> Notifications:
    """The hub for these settings (validated when config.yaml loaded, so nothing here is refused).

    Raises:
        ConfigError: a channel's settings are unusable (already refused when config.yaml loads).
    """
    channels = {name: _channel(name, config, audit, transport, sleep)
                for name, config in notify.channels.items()}
    legacy = _legacy(reboot, channels, audit, transport) if "notifiers" in reboot.model_fields_set else ()

    def route(kind: EventKind) -> Sequence[str]:
        names = notify.channels_for(str(kind))
        return tuple(dict.fromkeys((*names, *legacy))) if kind in REBOOT_KINDS else names

    return Notifications(channels, route, audit, queue_size=notify.queue_size,
                         flush_timeout_s=notify.flush_timeout_s)


def _channel(name: str, config: ChannelSettings, audit: AuditSink, transport: Transport | None,
             sleep: Sleep) -> Channel:
    if isinstance(config, LogChannelSettings):
        return LogChannel(audit, name)
    if isinstance(config, WebhookChannelSettings):
        return WebhookChannel(name, config.url, timeout_s=config.timeout_s, retries=config.retries,
                              backoff_s=config.backoff_s, sleep=sleep)
    return CommandChannel(name, config.argv, timeout_s=config.timeout_s, transport=transport)


def _legacy(reboot: RebootSettings, channels: dict[str, Channel], audit: AuditSink,
            transport: Transport | None) -> tuple[str, ...]:
    """Adds the ``reboot.notifiers`` to ``channels``; returns the names reboot events also go to."""
    log.warning("config: `reboot.notifiers` is deprecated; move them to `notify.channels` and route the "
                "reboot events with `notify.routes` (see the README, Notifications)")
    names: list[str] = []
    for index, config in enumerate(reboot.notifiers):
        names.append(_legacy_one(index, config, channels, audit, transport))
    return tuple(names)


def _legacy_one(index: int, config: NotifierSettings, channels: dict[str, Channel], audit: AuditSink,
                transport: Transport | None) -> str:
    name = f"reboot.{index}"
    if isinstance(config, WebhookNotifierSettings):
        # No retries: exactly what the reboot notifier did.
        channels[name] = WebhookChannel(name, config.url, timeout_s=config.timeout_s, retries=0)
        return name
    if isinstance(config, CommandNotifierSettings):
        channels[name] = CommandChannel(name, config.argv, timeout_s=config.timeout_s, transport=transport)
        return name
    # {kind: log}: the log channel the notify section has (one log line per event, not two).
    existing = next((name for name, channel in channels.items() if isinstance(channel, LogChannel)), None)
    if existing is not None:
        return existing
    channels["reboot.log"] = LogChannel(audit, "reboot.log")
    return "reboot.log"


def from_reboot(event: RebootEvent, *, session_id: str = "") -> Event:
    """The hub's event for one of the reboot code's."""
    details = {"txn_id": event.txn_id, "support_ref": event.support_ref,
               "manual_steps": list(event.manual_steps), "reboot_at": event.reboot_at}
    return Event(EventKind(event.kind), event.target, event.message, component="reboot",
                 session_id=session_id, details={k: v for k, v in details.items() if v not in (None, "", [])},
                 at=event.at)


@dataclass(frozen=True)
class RebootBridge:
    """A :class:`~orchestrator.reboot.notify.Notifier` for the reboot code that emits into the hub;
    never raises (the hub does not)."""

    hub: Emitter

    def notify(self, event: RebootEvent) -> None:
        self.hub.emit(from_reboot(event))
