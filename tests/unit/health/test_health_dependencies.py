"""HealthMonitor and the dependency score: broken dependencies refuse the blind restart (rule 4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from orchestrator.bootdiag.result import DependencyScore, Finding, FindingKind
from orchestrator.model import Component, Severity
from orchestrator.transport.base import Transport
from tests.unit.health.harness import APP, HEALTH, WEB, Harness, kinds

#: ``app`` as an optional component shipped by a Debian package.
PACKAGED = dataclasses.replace(APP, packages=("app-pkg",), vital=False)
HALF_CONFIGURED = b"The following packages are only half configured:\n app-pkg    the app\n"
WANTS = Finding(10, "app.service Wants= cache.service, which failed", FindingKind.SOFT_DEPENDENCY)
HARD = Finding(25, "app.service Requires= db.service, which failed", FindingKind.HARD_DEPENDENCY)


class Scripted:
    """A ``score`` that answers ``findings`` and counts the components it scored."""

    def __init__(self, *findings: Finding) -> None:
        self.findings = findings
        self.scored: list[str] = []

    def __call__(self, transport: Transport, component: Component) -> DependencyScore:
        self.scored.append(component.name)
        return DependencyScore(self.findings)


def test_its_own_broken_package_refuses_the_restart_and_escalates(make: Callable[..., Harness]) -> None:
    # The real score on the fake target: dpkg --audit names the component's package.
    h = make(PACKAGED, failures_before_restart=1)
    h.target.host.dpkg_audit = HALF_CONFIGURED
    h.target.set(HEALTH, "503")
    events = h.poll()
    assert kinds(events) == ["failed", "dependency_blocked", "escalated"]
    assert h.restarts() == []
    reason = ("its dependencies are broken: dpkg --audit names app-pkg: The following packages are only "
              "half configured:; a restart would not help")
    assert h.escalations == [("app", reason)]
    # Optional, and one finding leaves a score of 60: a warning.
    assert h.severities == [Severity.WARNING]
    blocked = events[1]
    assert blocked.summary == f"app: {reason}"
    assert blocked.details["score"] == "60"
    assert blocked.details["findings"].startswith("-40 dpkg --audit names app-pkg")
    assert ("dpkg", "--audit") in h.transport.argvs
    record = next(r for r in h.audit.records if r["details"].get("health_event") == "dependency_blocked")
    assert (record["event"], record["details"]["score"], record["details"]["severity"]) == (
        "error", "60", "warning")
    assert h.audit.records[-1]["details"]["severity"] == "warning"  # the escalation's


def test_a_failed_hard_dependency_refuses_the_restart(make: Callable[..., Harness]) -> None:
    score = Scripted(HARD)
    h = make(failures_before_restart=1, score=score)
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed", "dependency_blocked", "escalated"]
    assert h.restarts() == []
    # APP is vital: critical whatever the score.
    assert h.severities == [Severity.CRITICAL]
    # Escalated, so held: no second score while the pipeline owns it.
    assert kinds(h.poll()) == ["failed", "held"]
    assert score.scored == ["app"]


def test_harmless_findings_leave_the_restart_alone(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, score=Scripted(WANTS, WANTS))
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed", "restarted"]
    assert h.restarts() == ["app.service"]
    assert h.escalations == []


def test_the_threshold_comes_from_the_health_settings(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, score=Scripted(HARD), blind_restart_max_points=25)
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed", "restarted"]


def test_a_failing_config_test_escalates_before_any_score(make: Callable[..., Harness]) -> None:
    score = Scripted(HARD)
    h = make(dataclasses.replace(WEB, vital=False), failures_before_restart=1, score=score)
    h.target.set("http://127.0.0.1:80/", "502")
    h.target.host.config_tests["nginx"] = (1, b"nginx: [emerg] unknown directive\n")
    assert kinds(h.poll()) == ["failed", "vital_check_failed", "escalated"]
    assert score.scored == []
    assert h.severities == [Severity.WARNING]


def test_exhausted_restarts_escalate_with_the_severity_of_the_score(make: Callable[..., Harness]) -> None:
    # 6 x 10 points: score 40, below critical_below_score (50), yet nothing a restart cannot cure.
    optional = dataclasses.replace(APP, vital=False)
    h = make(optional, failures_before_restart=1, restarts_before_escalation=1, score=Scripted(*[WANTS] * 6))
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed", "restarted"]
    assert kinds(h.poll()) == ["failed", "escalated"]
    assert h.severities == [Severity.CRITICAL]
