"""Telling people about reboots: a log and audit record, a webhook POST, or a local command.

The notifiers configured under ``reboot.notifiers`` (deprecated: ``notify:`` routes every event,
reboot events included, see :mod:`orchestrator.notify`). The webhook and the command are the channels
of :mod:`orchestrator.notify.channels`, re-exported here; the pipeline and the reboot code reach people
through :func:`orchestrator.notify.build.reboot_notifier`, which feeds these events into the hub.

Every notifier takes a :class:`RebootEvent` and raises :class:`NotifyError` when it could not deliver
it. :func:`build_notifiers` wraps the configured ones in a :class:`CompositeNotifier` that calls each,
records a failure in the audit log and carries on: a dead webhook must never block a repair, a reboot or
a rollback. Callers therefore only ever hold the composite.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.config.reboot import (
    LogNotifierSettings,
    NotifierSettings,
    RebootSettings,
    WebhookNotifierSettings,
)
from orchestrator.errors import AuditError, NotifyError
from orchestrator.notify.channels import CommandNotifier, WebhookNotifier
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport

__all__ = ["EVENT_KINDS", "CommandNotifier", "CompositeNotifier", "LogNotifier", "Notifier", "RebootEvent",
           "RebootEventKind", "WebhookNotifier", "build_notifiers"]

log = logging.getLogger(__name__)

RebootEventKind = Literal["reboot_scheduled", "reboot_imminent", "reboot_succeeded", "reboot_failed",
                          "rollback", "budget_exhausted"]
EVENT_KINDS: tuple[RebootEventKind, ...] = ("reboot_scheduled", "reboot_imminent", "reboot_succeeded",
                                            "reboot_failed", "rollback", "budget_exhausted")
#: Events somebody may have to act on; logged as warnings, the others as info.
_ALARMING = frozenset({"reboot_failed", "rollback", "budget_exhausted"})


@dataclass(frozen=True)
class RebootEvent:
    """What happened to ``target``. ``at`` (ISO-8601) is when it happened; ``reboot_at`` (ISO-8601,
    with ``reboot_scheduled``) is when the reboot is planned. ``manual_steps`` tell a person what to do
    when vmrepair stopped trying (``budget_exhausted``, a failed rollback)."""

    kind: RebootEventKind
    target: str
    message: str
    txn_id: str | None = None
    support_ref: str = ""
    manual_steps: list[str] = field(default_factory=list)
    at: str = field(default_factory=now_timestamp)
    reboot_at: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown reboot event kind {self.kind!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "message": self.message,
                "txn_id": self.txn_id, "support_ref": self.support_ref,
                "manual_steps": list(self.manual_steps), "at": self.at, "reboot_at": self.reboot_at}

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True).encode("utf-8")


class Notifier(Protocol):
    def notify(self, event: RebootEvent) -> None:
        """Deliver ``event``.

        Raises:
            NotifyError: it could not be delivered (only :class:`CompositeNotifier` never raises).
        """


class LogNotifier:
    """Python logging plus one durable audit record per event."""

    name = "log"

    def __init__(self, audit: AuditSink) -> None:
        self._audit = audit

    def notify(self, event: RebootEvent) -> None:
        """Raises: NotifyError when the audit record cannot be written."""
        level = logging.WARNING if event.kind in _ALARMING else logging.INFO
        log.log(level, "%s %s: %s", event.kind, event.target, event.message)
        try:
            self._audit.record(event.kind, component="reboot", status=event.kind,
                               details=event.as_dict(), durable=True)
        except AuditError as exc:
            raise NotifyError(f"log: cannot write the audit record: {exc.message}") from exc


@dataclass
class CompositeNotifier:
    """Calls every notifier; a failure is logged and audited, never raised."""

    notifiers: list[tuple[str, Notifier]]
    audit: AuditSink

    def notify(self, event: RebootEvent) -> None:
        for name, notifier in self.notifiers:
            try:
                notifier.notify(event)
            except NotifyError as exc:
                self._failed(name, event, exc.message)
            except Exception as exc:  # noqa: BLE001 - a notifier's bug must not block a repair either
                self._failed(name, event, f"{type(exc).__name__}: {exc}")

    def _failed(self, name: str, event: RebootEvent, message: str) -> None:
        log.warning("notifier %s failed for %s %s: %s", name, event.kind, event.target, message)
        try:
            log_error(self.audit, "reboot", f"notify failed: {message}", notifier=name, kind=event.kind,
                      target=event.target, txn_id=event.txn_id)
        except AuditError as exc:
            log.error("cannot audit the notifier failure: %s", exc.message)  # noqa: TRY400 - expected, no trace


def build_notifiers(settings: RebootSettings, audit: AuditSink, *,
                    transport: Transport | None = None) -> CompositeNotifier:
    """The configured notifiers behind one :class:`CompositeNotifier`.

    Raises:
        ConfigError: a notifier's settings are unusable (already refused when config.yaml loads).
    """
    return CompositeNotifier([_build_one(config, audit, transport) for config in settings.notifiers], audit)


def _build_one(config: NotifierSettings, audit: AuditSink,
               transport: Transport | None) -> tuple[str, Notifier]:
    if isinstance(config, LogNotifierSettings):
        return LogNotifier.name, LogNotifier(audit)
    if isinstance(config, WebhookNotifierSettings):
        webhook = WebhookNotifier(config.url, timeout_s=config.timeout_s)
        return webhook.name, webhook
    command = CommandNotifier(config.argv, timeout_s=config.timeout_s, transport=transport)
    return command.name, command

