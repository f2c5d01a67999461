"""Health polling of a target's services: retry, restart in place, escalate (see :mod:`.monitor`)."""

from __future__ import annotations

from orchestrator.health.events import HealthEvent, HealthEventKind
from orchestrator.health.monitor import HealthMonitor

__all__ = ["HealthEvent", "HealthEventKind", "HealthMonitor"]
