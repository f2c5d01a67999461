"""What boot diagnostics found per component, what it did about it, and its dependency score."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.model import Severity


class ComponentState(StrEnum):
    HEALTHY = "healthy"
    BROKEN = "broken"      # present, but a probe fails
    MISSING = "missing"    # a unit or package is gone (or a package is half-installed)
    REDUCED = "reduced"    # a vmrepair stub stands in for its unit: dependants run, it does not
    UNKNOWN = "unknown"    # nothing could be checked (no systemd, no curl, no dpkg)


#: States in which a component does not do its job.
NOT_WORKING = frozenset({ComponentState.BROKEN, ComponentState.MISSING, ComponentState.REDUCED})


class ActionKind(StrEnum):
    REMOVE_STUB = "remove_stub"            # an earlier stub, taken away to see if the real unit works now
    REINSTALL = "reinstall"                # apt-get install --reinstall from the local package cache
    RESTORE_BASELINE = "restore_baseline"  # config and unit files put back from the baseline
    STUB_UNIT = "stub_unit"                # a stand-in unit, so dependants keep running


class ActionStatus(StrEnum):
    FIXED = "fixed"        # the component passes its probes afterwards
    DONE = "done"          # it ran; the component still fails (or, for a stub, runs reduced)
    SKIPPED = "skipped"    # not applicable here (nothing cached, no baseline, nothing differs)
    FAILED = "failed"      # the action itself failed


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    status: ActionStatus
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "status": str(self.status), "detail": self.detail}


class FindingKind(StrEnum):
    """What a dependency finding is about; :mod:`.verdict` decides from it whether a restart can help."""

    OWN_PACKAGE = "own_package"            # dpkg --audit names one of the component's packages
    OTHER_PACKAGES = "other_packages"      # dpkg --audit names only packages of others
    PIP_CHECK = "pip_check"                # pip check of the Python app's interpreter fails
    HARD_DEPENDENCY = "hard_dependency"    # a Requires/Requisite/BindsTo unit failed or is gone
    SOFT_DEPENDENCY = "soft_dependency"    # a Wants unit failed


@dataclass(frozen=True)
class Finding:
    """One thing that lowered a dependency score, and by how much."""

    points: int
    reason: str
    kind: FindingKind


@dataclass(frozen=True)
class DependencyScore:
    """100 minus the findings' points (not below 0). ``notes`` name checks that could not run: they
    lower nothing, but the score then says less."""

    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def score(self) -> int:
        return max(0, 100 - sum(f.points for f in self.findings))

    def as_dict(self) -> dict[str, object]:
        return {"score": self.score, "lowered_by": [{"points": f.points, "reason": f.reason,
                                                     "kind": str(f.kind)} for f in self.findings],
                "notes": list(self.notes)}


@dataclass(frozen=True)
class DependencyVerdict:
    """What a dependency score decides (:func:`orchestrator.bootdiag.verdict.judge`): how severe the
    component's trouble is, and whether the daemon may restart it blindly. ``reason`` says why a
    restart is refused, or what allowed it."""

    severity: Severity
    may_restart: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"severity": str(self.severity), "may_restart": self.may_restart, "reason": self.reason}


@dataclass(frozen=True)
class ComponentDiagnosis:
    name: str
    vital: bool
    #: Before any remediation.
    found: ComponentState
    #: After the remediation (the same as ``found`` when nothing was done).
    state: ComponentState
    problems: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    dependencies: DependencyScore = field(default_factory=DependencyScore)
    #: What the score decides; None until :func:`orchestrator.bootdiag.verdict.judge_diagnosis` judged
    #: it (it needs the ``health:`` thresholds, which the diagnosis itself does not know).
    verdict: DependencyVerdict | None = None

    @property
    def is_broken_vital(self) -> bool:
        return self.vital and self.state in NOT_WORKING

    @property
    def action_summary(self) -> str:
        if self.actions:
            return "; ".join(f"{a.kind} {a.status}" for a in self.actions)
        if self.found in NOT_WORKING and not self.vital:
            return "none (optional: reduced features)"
        return "none"

    def as_dict(self) -> dict[str, object]:
        return {"component": self.name, "vital": self.vital, "found": str(self.found),
                "state": str(self.state), "problems": list(self.problems),
                "actions": [a.as_dict() for a in self.actions],
                "dependencies": self.dependencies.as_dict(),
                "severity": None if self.verdict is None else str(self.verdict.severity),
                "may_restart": None if self.verdict is None else self.verdict.may_restart,
                "restart_reason": None if self.verdict is None else self.verdict.reason}


@dataclass(frozen=True)
class BootDiagnosis:
    components: tuple[ComponentDiagnosis, ...]
    remediate: bool

    @property
    def has_broken_vital(self) -> bool:
        """A vital component still does not work (stubbed ones included: their dependants run, they
        do not)."""
        return any(c.is_broken_vital for c in self.components)

    def as_dict(self) -> dict[str, object]:
        return {"ok": not self.has_broken_vital, "remediate": self.remediate,
                "components": [c.as_dict() for c in self.components]}
