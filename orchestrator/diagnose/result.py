"""What diagnosis found: the output of every diagnostic run, each playbook's finding, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.playbooks.model import UNKNOWN_CAUSE


@dataclass(frozen=True)
class DiagnosticRun:
    """One diagnostic as it ran in the VM. ``exit_status`` is None when it did not run (a placeholder
    had no value) or did not finish (timeout); ``output`` is capped, control-character-safe text."""

    playbook: str
    name: str
    argv: tuple[str, ...]
    exit_status: int | None
    output: str
    duration_s: float = 0.0
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"playbook": self.playbook, "name": self.name, "argv": list(self.argv),
                "exit_status": self.exit_status, "output": self.output,
                "duration_s": round(self.duration_s, 3), "note": self.note}


@dataclass(frozen=True)
class Finding:
    """One playbook's conclusion: the cause of its first matching rule (or ``unknown``)."""

    playbook: str
    cause: str
    confidence: float
    #: Index of the rule that matched, None when none did.
    rule: int | None
    variables: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"playbook": self.playbook, "cause": self.cause, "confidence": self.confidence,
                "rule": self.rule, "variables": dict(self.variables)}


@dataclass(frozen=True)
class Diagnosis:
    """The verdict: the most confident finding (ties: playbook order), plus every finding and run.

    ``variables`` merges the variables of all findings, the verdict's first, so a strategy of another
    applicable playbook still finds what its own rules extracted. ``evidence`` maps a diagnostic name
    to its output (``playbook/name`` when two playbooks run different commands under one name).
    """

    cause: str
    confidence: float
    playbook: str | None
    evidence: dict[str, str]
    variables: dict[str, str]
    findings: tuple[Finding, ...] = ()
    runs: tuple[DiagnosticRun, ...] = ()

    @property
    def is_unknown(self) -> bool:
        return self.cause == UNKNOWN_CAUSE

    def finding_for(self, playbook: str) -> Finding | None:
        return next((f for f in self.findings if f.playbook == playbook), None)

    def as_dict(self) -> dict[str, object]:
        return {"cause": self.cause, "confidence": self.confidence, "playbook": self.playbook,
                "variables": dict(self.variables), "evidence": dict(self.evidence),
                "findings": [f.as_dict() for f in self.findings],
                "diagnostics": [r.as_dict() for r in self.runs]}
