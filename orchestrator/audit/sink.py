"""The interface every stage, the daemon and the self-healing code log through (the audit trail).

:class:`AuditSink` is what callers depend on; :class:`orchestrator.audit.log.AuditLog` is the
hash-chained JSON-lines file behind it, and :class:`NullAuditSink` / :class:`MemoryAuditSink` serve
library use and tests. Callers pass plain strings and JSON-able details; anything that came from a
guest or target may be passed as is: the sink escapes it so it can never forge or split a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class AuditSink(Protocol):
    def record(
        self,
        event: str,
        *,
        component: str,
        status: str,
        details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """Append one record. ``durable=True`` fsyncs it (points where a fix changes state).

        Raises:
            AuditError: the record cannot be written.
        """


class NullAuditSink:
    def record(
        self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        return None


@dataclass
class MemoryAuditSink:
    """Keeps records in a list (tests, and ``--dry-run`` style callers that want to show them)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        self.records.append({"event": event, "component": component, "status": status,
                             "details": dict(details or {}), "durable": durable})


def log_error(sink: AuditSink, component: str, message: str, **details: Any) -> None:
    """Something failed (a probe, a step, an apply); ``message`` is the user-facing error text."""
    sink.record("error", component=component, status="error", details={"message": message, **details})


def log_recovery(sink: AuditSink, component: str, action: str, *, status: str = "ok",
                 **details: Any) -> None:
    """A recovery action ran (restart, rollback, journal recovery, reinstall); fsynced."""
    sink.record("recovery", component=component, status=status,
                details={"action": action, **details}, durable=True)


def log_quarantine(sink: AuditSink, component: str, reason: str, *, released: bool = False,
                   **details: Any) -> None:
    """A component was isolated (or released from isolation); fsynced."""
    sink.record("quarantine_release" if released else "quarantine", component=component,
                status="released" if released else "quarantined",
                details={"reason": reason, **details}, durable=True)


@dataclass
class QuietAuditSink:
    """Wraps a sink for code paths where the target matters more than the record (applying, rolling
    back, recovering): a failed append is logged loudly instead of interrupting the repair."""

    inner: AuditSink

    def record(
        self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        from orchestrator.errors import AuditError

        try:
            self.inner.record(event, component=component, status=status, details=details, durable=durable)
        except AuditError as exc:
            logging.getLogger(__name__).exception("audit record %s/%s not written: %s", event, component,
                                                  exc.message)
