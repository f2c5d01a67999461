"""What the health monitor observed or did in one poll, and how each event enters the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.audit.sink import AuditSink, log_error, log_recovery


class HealthEventKind(StrEnum):
    FAILED = "failed"                        # a poll failed (after its retries); details say how often
    RECOVERED = "recovered"                  # passing again after failed polls
    RESTARTED = "restarted"                  # the component's units were restarted
    RESTART_FAILED = "restart_failed"        # refused, failed to start, or hung (killed at the deadline)
    VITAL_CHECK_FAILED = "vital_check_failed"  # config test fails: a restart would not help
    ESCALATED = "escalated"                  # handed to the repair pipeline (escalate callback)
    HELD = "held"                            # still failing but escalated recently: no action
    UNAVAILABLE = "unavailable"              # no probe could run (no curl on the target)
    RESTART_LOOP = "restart_loop"            # a unit restarts itself over and over (NRestarts, start limit)
    DEPENDENCY_BLOCKED = "dependency_blocked"  # its dependencies are broken: a restart would not help


#: Events that record something broken (audited as errors).
_ERRORS = frozenset({HealthEventKind.FAILED, HealthEventKind.HELD, HealthEventKind.VITAL_CHECK_FAILED,
                     HealthEventKind.RESTART_LOOP, HealthEventKind.DEPENDENCY_BLOCKED})


@dataclass(frozen=True)
class HealthEvent:
    """One event of one component. ``at`` is the monitor's clock (monotonic seconds) when it happened;
    ``details`` are short strings (probe names, counts, capped command output)."""

    component: str
    kind: HealthEventKind
    summary: str
    at: float
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"component": self.component, "kind": str(self.kind), "summary": self.summary,
                "at": self.at, "details": dict(self.details)}


def audit_event(sink: AuditSink, event: HealthEvent) -> None:
    """Record ``event`` through the audit helpers: failures as errors, restarts as recoveries.

    Raises:
        AuditError: the record cannot be written.
    """
    details = {"health_event": str(event.kind), **event.details}
    if event.kind in _ERRORS:
        log_error(sink, event.component, event.summary, **details)
    elif event.kind in (HealthEventKind.RESTARTED, HealthEventKind.RESTART_FAILED):
        status = "ok" if event.kind is HealthEventKind.RESTARTED else "failed"
        log_recovery(sink, event.component, "restart", status=status, summary=event.summary, **details)
    else:
        # An escalation is durable: the daemon acts on it (a repair run) and the trail must show why.
        # Its "escalation" record is the daemon's to write, when it takes the hand-over.
        sink.record("health", component=event.component, status=str(event.kind),
                    details={"summary": event.summary, **details},
                    durable=event.kind is HealthEventKind.ESCALATED)
