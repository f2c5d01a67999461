"""One notification: a typed, frozen :class:`Event`, the JSON every channel sends.

The JSON (``Event.as_dict``) is the documented payload of webhooks and commands::

    {"kind": "not_repaired", "at": "2026-12-06T20:15:12Z", "target": "vm:web",
     "component": "nginx", "session_id": "20261206-...", "summary": "...", "details": {...}}
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from orchestrator.timestamps import now_timestamp


class EventKind(StrEnum):
    """What happened. Routed by its value (``notify.routes`` in config.yaml)."""

    #: A repair escalated to a troubleshooting VM (``notify.troubleshooting: immediate``).
    TROUBLESHOOTING_STARTED = "troubleshooting_started"
    #: One per run: every escalation of the run and how it ended (``troubleshooting: summary``).
    TROUBLESHOOTING_SUMMARY = "troubleshooting_summary"
    REPAIRED = "repaired"
    #: Not repaired; ``details.manual_steps`` says what a person can do.
    NOT_REPAIRED = "not_repaired"
    NOT_REPRODUCED = "not_reproduced"
    #: The run itself failed (a stage raised; the stage is in the summary).
    ERROR = "error"
    QUARANTINED = "quarantined"
    RELEASED = "released"
    #: A fix is applied and waits for its reboot; ``details.reboot_when`` says when.
    PENDING_REBOOT = "pending_reboot"
    ROLLBACK = "rollback"
    BUDGET_EXHAUSTED = "budget_exhausted"
    #: An issue the daemon found under policy ``ask``: it waits for the operator.
    AWAITING_APPROVAL = "awaiting_approval"
    REBOOT_SCHEDULED = "reboot_scheduled"
    REBOOT_IMMINENT = "reboot_imminent"
    REBOOT_SUCCEEDED = "reboot_succeeded"
    REBOOT_FAILED = "reboot_failed"


#: Every kind's name, for config validation (routes name kinds).
EVENT_KINDS: frozenset[str] = frozenset(k.value for k in EventKind)
#: Events somebody may have to act on: logged as warnings, the others as info.
ALARMING = frozenset({EventKind.NOT_REPAIRED, EventKind.ERROR, EventKind.QUARANTINED, EventKind.ROLLBACK,
                      EventKind.BUDGET_EXHAUSTED, EventKind.AWAITING_APPROVAL, EventKind.REBOOT_FAILED})


@dataclass(frozen=True)
class Event:
    """``kind`` happened to ``component`` on ``target`` at ``at`` (:mod:`orchestrator.timestamps`'
    one format), in repair session ``session_id`` when there was one. ``summary`` is one line for a
    person; ``details`` are JSON-serialisable facts (manual steps, transaction, reboot time ...),
    read-only. ``is_audited``: the emitting code already wrote this event's durable audit record
    (quarantine, release, an issue waiting for approval), so the log channel only logs it: one audit
    record per fact."""

    kind: EventKind
    target: str
    summary: str
    component: str = ""
    session_id: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=now_timestamp)
    is_audited: bool = False

    def __post_init__(self) -> None:
        # Frozen all the way down: the event is shared by every channel, some on another thread.
        object.__setattr__(self, "kind", EventKind(self.kind))
        object.__setattr__(self, "details", types.MappingProxyType(dict(self.details)))

    @property
    def is_alarming(self) -> bool:
        return self.kind in ALARMING

    def as_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "at": self.at, "target": self.target, "component": self.component,
                "session_id": self.session_id, "summary": self.summary, "details": dict(self.details)}

    def to_json(self) -> bytes:
        # default=str: a Path or an enum in the details must not turn a notification into a crash.
        return json.dumps(self.as_dict(), sort_keys=True, default=str).encode("utf-8")


class Emitter(Protocol):
    """What emits events: :class:`~orchestrator.notify.hub.Notifications`, or a recorder in tests."""

    def emit(self, event: Event) -> None:
        """Deliver ``event``; never raises."""
