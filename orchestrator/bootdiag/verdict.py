"""What a dependency score decides: the component's severity, and whether it may be restarted blindly.

A restart cures a service that died or hung; it cannot cure what the service stands on. Findings of
these kinds are not cured by restarting the component (:data:`BLOCKING`):

=======================================  ======  ==========================================
finding                                  points  a restart of the component ...
=======================================  ======  ==========================================
``dpkg --audit`` names its own package       40  starts half-configured code again
``pip check`` fails for its interpreter      30  imports the same broken requirements
a hard (Requires=) dependency is broken      25  fails again, or is refused by systemd
a Wants= dependency failed                   10  still starts (it is only wanted): no block
``dpkg --audit`` names other packages        10  is not concerned: no block
=======================================  ======  ==========================================

Rules (``settings`` is the ``health:`` section of config.yaml):

1. A blind restart is refused when the points of the blocking findings add up to more than
   ``blind_restart_max_points`` (default 24: each blocking finding alone refuses).
2. The severity is CRITICAL for a vital component, or when the score is below
   ``critical_below_score`` (default 50); WARNING otherwise.

Pure: the score is measured elsewhere (:mod:`.dependencies`).
"""

from __future__ import annotations

import dataclasses

from orchestrator.bootdiag.result import BootDiagnosis, DependencyScore, DependencyVerdict, FindingKind
from orchestrator.config.daemon import HealthSettings
from orchestrator.model import Severity

#: Finding kinds a restart of the component cannot cure (see the module docstring).
BLOCKING = frozenset({FindingKind.OWN_PACKAGE, FindingKind.PIP_CHECK, FindingKind.HARD_DEPENDENCY})

__all__ = ["BLOCKING", "DependencyVerdict", "judge", "judge_diagnosis"]


def judge(*, vital: bool, score: DependencyScore, settings: HealthSettings) -> DependencyVerdict:
    """The verdict on a component that is ``vital`` (or optional) with dependency ``score``."""
    severity = (Severity.CRITICAL if vital or score.score < settings.critical_below_score
                else Severity.WARNING)
    blocking = [f for f in score.findings if f.kind in BLOCKING]
    points = sum(f.points for f in blocking)
    limit = settings.blind_restart_max_points
    if points > limit:
        named = "; ".join(f.reason for f in blocking)
        return DependencyVerdict(severity, False,
                                 f"its dependencies are broken: {named}; a restart would not help")
    if blocking:
        return DependencyVerdict(severity, True, f"dependency findings of {points} points, within "
                                 f"health.blind_restart_max_points ({limit})")
    return DependencyVerdict(severity, True, f"dependencies allow a restart (score {score.score})")


def judge_diagnosis(diagnosis: BootDiagnosis, settings: HealthSettings) -> BootDiagnosis:
    """``diagnosis`` with every component's verdict (boot diagnostics do not know the thresholds)."""
    return dataclasses.replace(diagnosis, components=tuple(
        dataclasses.replace(c, verdict=judge(vital=c.vital, score=c.dependencies, settings=settings))
        for c in diagnosis.components))
