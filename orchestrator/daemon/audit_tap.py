"""An audit sink that forwards every record and counts restarts, quarantines and errors for /metrics.

Counting at the audit boundary means the daemon needs no knowledge of how the health monitor, the
quarantine code or the recovery report their actions: whatever they log, /metrics counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.audit.sink import AuditSink
from orchestrator.daemon.state import DaemonState


class CountingAuditSink:
    def __init__(self, inner: AuditSink, state: DaemonState) -> None:
        self._inner = inner
        self._state = state

    def record(
        self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """Forward to the real sink first, then count.

        Raises:
            AuditError: from the real sink (the record is then not counted either).
        """
        self._inner.record(event, component=component, status=status, details=details, durable=durable)
        self._state.record_audit(event, component, details or {})
