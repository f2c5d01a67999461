"""The dependency verdict: which findings refuse a blind restart, and the severity they give."""

from __future__ import annotations

import pytest

from orchestrator.bootdiag.result import (
    BootDiagnosis,
    ComponentDiagnosis,
    ComponentState,
    DependencyScore,
    Finding,
    FindingKind,
)
from orchestrator.bootdiag.verdict import judge, judge_diagnosis
from orchestrator.config.daemon import HealthSettings
from orchestrator.model import Severity

OWN = Finding(40, "dpkg --audit names app-pkg: half configured", FindingKind.OWN_PACKAGE)
PIP = Finding(30, "pip check (/usr/bin/python3, app.service): app requires requests", FindingKind.PIP_CHECK)
HARD = Finding(25, "app.service Requires= db.service, which failed", FindingKind.HARD_DEPENDENCY)
GONE = Finding(25, "app.service Requires= gone.service, which does not exist", FindingKind.HARD_DEPENDENCY)
WANTS = Finding(10, "app.service Wants= cache.service, which failed", FindingKind.SOFT_DEPENDENCY)
OTHERS = Finding(10, "dpkg --audit reports other packages: nginx", FindingKind.OTHER_PACKAGES)
DEFAULTS = HealthSettings()


def verdict(*findings: Finding, vital: bool = False, settings: HealthSettings = DEFAULTS) -> tuple[
        Severity, bool, str]:
    v = judge(vital=vital, score=DependencyScore(findings), settings=settings)
    return v.severity, v.may_restart, v.reason


@pytest.mark.parametrize("finding", [OWN, PIP, HARD, GONE], ids=["own-package", "pip", "hard", "gone"])
def test_each_finding_a_restart_cannot_cure_refuses_alone(finding: Finding) -> None:
    severity, may_restart, reason = verdict(finding)
    assert not may_restart
    assert reason == f"its dependencies are broken: {finding.reason}; a restart would not help"
    # One finding of at most 40 points leaves a score of at least 60: optional stays a warning.
    assert severity is Severity.WARNING


@pytest.mark.parametrize("finding", [WANTS, OTHERS], ids=["wants", "other-packages"])
def test_a_failed_wants_unit_or_other_packages_allow_a_restart(finding: Finding) -> None:
    assert verdict(finding) == (Severity.WARNING, True, "dependencies allow a restart (score 90)")


def test_no_findings_allow_a_restart() -> None:
    assert verdict() == (Severity.WARNING, True, "dependencies allow a restart (score 100)")


def test_harmless_findings_never_add_up_to_a_refusal() -> None:
    many = (WANTS,) * 3 + (OTHERS,) * 2
    severity, may_restart, _ = verdict(*many)
    assert may_restart
    # 50 points lost: score 50 is not below 50.
    assert severity is Severity.WARNING
    assert verdict(*many, WANTS)[0] is Severity.CRITICAL


def test_a_refusal_names_every_blocking_finding_and_no_harmless_one() -> None:
    _, may_restart, reason = verdict(HARD, WANTS, PIP)
    assert not may_restart
    assert reason == (f"its dependencies are broken: {HARD.reason}; {PIP.reason}; a restart would not "
                      "help")


def test_a_low_score_is_critical_even_for_an_optional_component() -> None:
    # 40 + 30 = 70 points: score 30, below the default 50.
    assert verdict(OWN, PIP)[0] is Severity.CRITICAL
    assert verdict(OWN)[0] is Severity.WARNING


def test_a_vital_component_is_always_critical() -> None:
    assert verdict(vital=True) == (Severity.CRITICAL, True, "dependencies allow a restart (score 100)")
    assert verdict(HARD, vital=True)[:2] == (Severity.CRITICAL, False)


def test_the_thresholds_come_from_the_health_settings() -> None:
    lenient = HealthSettings(blind_restart_max_points=60, critical_below_score=80)
    # 25 + 30 = 55 blocking points: within 60.
    assert verdict(HARD, PIP, settings=lenient) == (
        Severity.CRITICAL, True, "dependency findings of 55 points, within "
        "health.blind_restart_max_points (60)")
    assert verdict(HARD, PIP, OWN, settings=lenient)[1] is False
    assert verdict(WANTS, settings=lenient)[0] is Severity.WARNING
    assert verdict(WANTS, WANTS, WANTS, settings=lenient)[0] is Severity.CRITICAL


def test_judge_diagnosis_gives_every_component_its_verdict() -> None:
    healthy = ComponentDiagnosis("web", True, ComponentState.HEALTHY, ComponentState.HEALTHY)
    broken = ComponentDiagnosis("app", False, ComponentState.BROKEN, ComponentState.BROKEN,
                                dependencies=DependencyScore((PIP,)))
    assert healthy.as_dict()["severity"] is None
    judged = judge_diagnosis(BootDiagnosis((healthy, broken), remediate=False), DEFAULTS)
    web, app = (c.as_dict() for c in judged.components)
    assert (web["severity"], web["may_restart"]) == ("critical", True)
    assert (app["severity"], app["may_restart"]) == ("warning", False)
    assert app["restart_reason"] == f"its dependencies are broken: {PIP.reason}; a restart would not help"
    assert app["dependencies"] == {"score": 70, "notes": [], "lowered_by": [
        {"points": 30, "reason": PIP.reason, "kind": "pip_check"}]}
