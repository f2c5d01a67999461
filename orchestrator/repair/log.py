"""The record of one attempt: every step with its commands, and the operations a fix package replays.

Replayable operations use the JSON form of :mod:`orchestrator.fixpkg.ops` (``{"op": "daemon_reload"}``,
``{"op": "unit", "unit": U, "action": A}``, ``{"op": "rotate_log", "path": P, "method": M}``,
``{"op": "jsonl_repair", "path": P}``); each step kind builds its own through
:meth:`~orchestrator.steps.io.StepIO.replay_op` and declares them in its ``replays``. File contents, modes
and owners are *not* recorded: the package computes them by diffing manifests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.steps.io import CommandRecord

__all__ = ["AttemptLog", "AttemptStatus", "CommandRecord", "StepResult", "StepStatus"]

StepStatus = Literal["ok", "failed", "not_applicable"]
AttemptStatus = Literal["running", "ok", "failed", "skipped"]


@dataclass
class StepResult:
    index: int
    kind: str
    #: What the step does, as written in the playbook (``restart {unit}``, an argv, ...).
    action: str
    status: StepStatus
    duration_s: float
    commands: list[CommandRecord] = field(default_factory=list)
    #: What happened beyond the commands (files restored, quarantined, rotated ...), or why it failed.
    detail: str = ""

    @property
    def exit_status(self) -> int | None:
        """The exit status of the step's last command (None when it ran none)."""
        return self.commands[-1].exit_status if self.commands else None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "action": self.action, "status": self.status,
                "exit_status": self.exit_status, "duration_s": round(self.duration_s, 3),
                "detail": self.detail, "commands": [c.as_dict() for c in self.commands]}


@dataclass
class AttemptLog:
    strategy: str
    playbook: str
    status: AttemptStatus = "running"
    steps: list[StepResult] = field(default_factory=list)
    replay_ops: list[dict[str, Any]] = field(default_factory=list)
    #: Changes made in the VM that no fix package operation can replay (enable/disable ...).
    unreplayable: list[str] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0

    def add_replay(self, op: dict[str, Any]) -> None:
        """Record an operation to replay on the target.

        A package runs all file operations first, then at most one daemon-reload, then unit actions and
        rotations in order (fixpkg.ops.validate_operations). So daemon-reload is kept once, in front: on
        the target the unit files have already changed by the time any replayed operation runs.
        """
        if op.get("op") == "daemon_reload":
            if not any(o.get("op") == "daemon_reload" for o in self.replay_ops):
                self.replay_ops.insert(0, dict(op))
            return
        self.replay_ops.append(dict(op))

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "playbook": self.playbook, "status": self.status,
                "error": self.error, "duration_s": round(self.duration_s, 3),
                "steps": [s.as_dict() for s in self.steps], "replay_ops": [dict(o) for o in self.replay_ops],
                "unreplayable": list(self.unreplayable)}
