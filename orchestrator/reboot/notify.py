"""Telling people about reboots: a log and audit record, a webhook POST, or a local command.

Every notifier takes a :class:`RebootEvent` and raises :class:`NotifyError` when it could not deliver
it. :func:`build_notifiers` wraps the configured ones in a :class:`CompositeNotifier` that calls each,
records a failure in the audit log and carries on: a dead webhook must never block a repair, a reboot or
a rollback. Callers therefore only ever hold the composite.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any, Literal, Protocol

from orchestrator import __version__
from orchestrator.audit.sink import AuditSink, log_error
from orchestrator.config.reboot import (
    LogNotifierSettings,
    NotifierSettings,
    RebootSettings,
    WebhookNotifierSettings,
)
from orchestrator.errors import AuditError, CommandTimeoutError, ConfigError, NotifyError, TransportError
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport
from orchestrator.transport.local import LocalTransport

log = logging.getLogger(__name__)

RebootEventKind = Literal["reboot_scheduled", "reboot_imminent", "reboot_succeeded", "reboot_failed",
                          "rollback", "budget_exhausted"]
EVENT_KINDS: tuple[RebootEventKind, ...] = ("reboot_scheduled", "reboot_imminent", "reboot_succeeded",
                                            "reboot_failed", "rollback", "budget_exhausted")
#: Events somebody may have to act on; logged as warnings, the others as info.
_ALARMING = frozenset({"reboot_failed", "rollback", "budget_exhausted"})
#: A webhook's answer is drained (so the connection closes cleanly) but never needed in full.
MAX_RESPONSE_BYTES = 64 * 1024
#: Output a notify command may print; it is only shown in an error.
MAX_COMMAND_OUTPUT = 64 * 1024


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


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    """A redirect could send the event to another host or scheme: answer 3xx as an error instead."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class WebhookNotifier:
    """POSTs the event as JSON; any answer but 2xx, a redirect, or no answer in time is a failure."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        """Raises: ConfigError when ``url`` is not an http(s) URL with a host."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL {_redacted(url)!r} must be http:// or https:// with a host")
        self.url = url
        self.timeout_s = timeout_s
        #: Messages name only scheme://host:port: a webhook path often holds its secret token.
        self.name = f"webhook {_redacted(url)}"
        self._opener = urllib.request.build_opener(_NoRedirectHandler)

    def notify(self, event: RebootEvent) -> None:
        """Raises: NotifyError naming the status, the network error or the timeout."""
        # S310: the scheme was checked in __init__ and redirects are refused, so this is http(s) only.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=event.to_json(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"vmrepair/{__version__}"})
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            exc.close()
            hint = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
            raise NotifyError(f"{self.name}: HTTP {exc.code} {exc.reason}{hint}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timed_out() from exc
            raise NotifyError(f"{self.name} unreachable: {exc.reason}") from exc
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except (OSError, http.client.HTTPException) as exc:
            raise NotifyError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise NotifyError(f"{self.name}: HTTP {status}, expected 2xx")

    def _timed_out(self) -> NotifyError:
        return NotifyError(f"{self.name}: no answer within {self.timeout_s:g} s")


class CommandNotifier:
    """Runs ``argv`` (never through a shell) with the event as JSON on stdin; non-zero is a failure."""

    def __init__(self, argv: Sequence[str], *, timeout_s: float = 30.0,
                 transport: Transport | None = None) -> None:
        """Raises: ConfigError when ``argv`` is empty."""
        if not argv:
            raise ConfigError("notify command: argv is empty")
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.name = f"command {self.argv[0]}"
        # The local transport is the one place vmrepair runs processes: it kills the command's whole
        # process group at the deadline, so a hung notifier cannot outlive it.
        self._transport = transport or LocalTransport()

    def notify(self, event: RebootEvent) -> None:
        """Raises: NotifyError when the command cannot run, times out or exits non-zero."""
        try:
            result = self._transport.run(self.argv, timeout=self.timeout_s, stdin=event.to_json(),
                                         max_output=MAX_COMMAND_OUTPUT)
        except CommandTimeoutError as exc:
            raise NotifyError(f"{self.name}: killed after {self.timeout_s:g} s") from exc
        except TransportError as exc:
            raise NotifyError(f"{self.name}: {exc.message}") from exc
        if not result.succeeded:
            stderr = " ".join(result.stderr_text.split())[-500:]
            raise NotifyError(f"{self.name}: exited {result.exit_status}" + (f": {stderr}" if stderr else ""))


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


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"
