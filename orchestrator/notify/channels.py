"""Where a notification goes: the log (and audit log), a JSON webhook, a local command.

:class:`WebhookNotifier` and :class:`CommandNotifier` send anything with a ``to_json()`` (a reboot
event of :mod:`orchestrator.reboot.notify` or an :class:`~orchestrator.notify.event.Event`) and raise
:class:`NotifyError` when they could not deliver it; :class:`NotifyTransientError` when trying again may
help. The ``*Channel`` classes are what the hub holds: each delivers an :class:`Event`.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from email.message import Message
from typing import IO, Protocol

from orchestrator import __version__
from orchestrator.audit.sink import AuditSink
from orchestrator.errors import (
    AuditError,
    CommandTimeoutError,
    ConfigError,
    NotifyError,
    NotifyTransientError,
    TransportError,
)
from orchestrator.notify.event import Event
from orchestrator.retry import Sleep, webhook_delivery_policy
from orchestrator.transport.base import Transport
from orchestrator.transport.local import LocalTransport

log = logging.getLogger(__name__)

#: A webhook's answer is drained (so the connection closes cleanly) but never needed in full.
MAX_RESPONSE_BYTES = 64 * 1024
#: Output a notify command may print; it is only shown in an error.
MAX_COMMAND_OUTPUT = 64 * 1024


class Payload(Protocol):
    def to_json(self) -> bytes: ...


class Channel(Protocol):
    """One configured destination.

    ``is_inline``: delivered on the caller's thread (cheap and local: the log); the others go through
    the hub's background worker so a slow receiver never holds a repair.
    """

    name: str
    is_inline: bool

    def deliver(self, event: Event) -> None:
        """Raises: NotifyError when the event could not be delivered."""


class LogChannel:
    """Python logging plus one durable audit record per event (named after the event's kind)."""

    is_inline = True

    def __init__(self, audit: AuditSink, name: str = "log") -> None:
        self.name = name
        self._audit = audit

    def deliver(self, event: Event) -> None:
        """Raises: NotifyError when the audit record cannot be written."""
        level = logging.WARNING if event.is_alarming else logging.INFO
        log.log(level, "%s %s%s: %s", event.kind, event.target,
                f" {event.component}" if event.component else "", event.summary)
        if event.is_audited:
            return
        try:
            self._audit.record(str(event.kind), component=event.component or "notify", status=str(event.kind),
                               details=event.as_dict(), durable=True)
        except AuditError as exc:
            raise NotifyError(f"{self.name}: cannot write the audit record: {exc.message}") from exc


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    """A redirect could send the event to another host or scheme: answer 3xx as an error instead."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class WebhookNotifier:
    """POSTs the payload as JSON, once; any answer but 2xx, a redirect, or no answer in time fails."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        """Raises: ConfigError when ``url`` is not an http(s) URL with a host."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL {redacted(url)!r} must be http:// or https:// with a host")
        self.url = url
        self.timeout_s = timeout_s
        #: Messages name only scheme://host:port: a webhook path often holds its secret token.
        self.name = f"webhook {redacted(url)}"
        self._opener = urllib.request.build_opener(_NoRedirectHandler)

    def notify(self, event: Payload) -> None:
        """Raises: NotifyTransientError (5xx, network error, timeout), NotifyError (another status)."""
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
            error = NotifyTransientError if exc.code >= 500 else NotifyError
            raise error(f"{self.name}: HTTP {exc.code} {exc.reason}{hint}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timed_out() from exc
            raise NotifyTransientError(f"{self.name} unreachable: {exc.reason}") from exc
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except (OSError, http.client.HTTPException) as exc:
            raise NotifyTransientError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise NotifyError(f"{self.name}: HTTP {status}, expected 2xx")

    def _timed_out(self) -> NotifyError:
        return NotifyTransientError(f"{self.name}: no answer within {self.timeout_s:g} s")


class CommandNotifier:
    """Runs ``argv`` (never through a shell) with the payload as JSON on stdin; non-zero is a failure."""

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

    def notify(self, event: Payload) -> None:
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


class WebhookChannel:
    """A webhook with retries (:func:`~orchestrator.retry.webhook_delivery_policy`). Worst case one
    event holds the background worker ``(retries + 1) * timeout_s`` plus the backoff waits."""

    is_inline = False

    def __init__(self, name: str, url: str, *, timeout_s: float, retries: int, backoff_s: float = 1.0,
                 sleep: Sleep = time.sleep) -> None:
        """Raises: ConfigError when ``url`` is not an http(s) URL with a host."""
        self._webhook = WebhookNotifier(url, timeout_s=timeout_s)
        self.name = f"{name} ({self._webhook.name})"
        self._retries, self._backoff_s, self._sleep = retries, backoff_s, sleep

    def deliver(self, event: Event) -> None:
        """Raises: NotifyError (the last failure once the retries are spent, or a final answer)."""
        policy = webhook_delivery_policy(retries=self._retries, backoff_s=self._backoff_s, sleep=self._sleep)
        policy(self._webhook.notify, event)


class CommandChannel:
    """A local command, the event as JSON on stdin (see the README for apprise through it)."""

    is_inline = False

    def __init__(self, name: str, argv: Sequence[str], *, timeout_s: float,
                 transport: Transport | None = None) -> None:
        """Raises: ConfigError when ``argv`` is empty."""
        self._command = CommandNotifier(argv, timeout_s=timeout_s, transport=transport)
        self.name = f"{name} ({self._command.name})"

    def deliver(self, event: Event) -> None:
        """Raises: NotifyError when the command cannot run, times out or exits non-zero."""
        self._command.notify(event)


def redacted(url: str) -> str:
    """``scheme://host:port`` of ``url``: its path and query may hold a secret token."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"
