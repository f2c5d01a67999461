"""Triage and the dependency score: broken dependencies turn a restart in place into an escalation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.bootdiag.result import DependencyScore, Finding, FindingKind
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.model import Component, Issue, IssueKind, SessionStatus, Severity
from orchestrator.pipeline import driver, triage
from orchestrator.pipeline.context import RunContext
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.transport.base import Transport
from tests.unit.detect.fakes import FakeHost
from tests.unit.pipeline.fakes import Script, run_context

APP = Component("app", units=("app.service",), packages=("app-pkg",), vital=False)
DOWN = Issue("app", IssueKind.UNIT_FAILED, Severity.CRITICAL, "app.service", "failed", "unit:app.service")
CONFIG = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "bad", "config:app")
WANTS = Finding(10, "app.service Wants= cache.service, which failed", FindingKind.SOFT_DEPENDENCY)


class Scripted:
    """A ``score`` that answers ``findings`` and counts its calls."""

    def __init__(self, *findings: Finding) -> None:
        self.findings = findings
        self.calls = 0

    def __call__(self, transport: Transport, component: Component) -> DependencyScore:
        self.calls += 1
        return DependencyScore(self.findings)


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def ctx(host: FakeHost, make_settings: Callable[..., Settings]) -> RunContext:
    return run_context(make_settings(watch=WatchConfig((APP,), mounts=())), host.transport())


def evidence(ctx: RunContext) -> dict[str, object]:
    path = Path(ctx.session.dir) / f"{Evidence.TRIAGE.file('app')}.json"
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_a_half_configured_own_package_escalates_instead_of_restarting(
    ctx: RunContext, host: FakeHost,
) -> None:
    # The real score on the fake target: dpkg --audit names the component's package.
    host.dpkg_audit = b"The following packages are only half configured:\n app-pkg    the app\n"
    decision = triage.triage(ctx, DOWN, (), APP)
    assert not decision.in_place
    reason = ("its dependencies are broken: dpkg --audit names app-pkg: The following packages are only "
              "half configured:; a restart would not help; escalating to a troubleshooting VM")
    assert decision.reason == reason
    [stage] = [r for r in ctx.session.timeline if r.name == Stage.TRIAGE]
    assert stage.detail == reason
    recorded = evidence(ctx)
    assert (recorded["in_place"], recorded["reason"]) == (False, reason)
    assert recorded["dependencies"] == {"score": 60, "notes": [], "lowered_by": [
        {"points": 40, "kind": "own_package",
         "reason": "dpkg --audit names app-pkg: The following packages are only half configured:"}]}


def test_sound_dependencies_keep_the_restart_in_place(ctx: RunContext, host: FakeHost) -> None:
    host.dpkg_audit = b""
    decision = triage.triage(ctx, DOWN, (), APP)
    assert decision.in_place
    assert decision.reason.startswith("only unit_failed: restart in place")
    assert evidence(ctx)["dependencies"] == {"score": 100, "notes": [], "lowered_by": []}


def test_harmless_findings_keep_the_restart_in_place(ctx: RunContext) -> None:
    assert triage.triage(ctx, DOWN, (), APP, score=Scripted(WANTS, WANTS)).in_place


def test_the_score_runs_only_when_triage_would_restart(ctx: RunContext) -> None:
    score = Scripted(WANTS)
    decision = triage.triage(ctx, CONFIG, (), APP, score=score)
    assert not decision.in_place
    assert score.calls == 0
    assert "dependencies" not in evidence(ctx)


def test_the_driver_sends_a_blocked_restart_to_a_troubleshooting_vm(
    ctx: RunContext, host: FakeHost, tmp_path: Path,
) -> None:
    host.dpkg_audit = b"app-pkg half-configured\n"
    script = Script(tmp_path, in_place=True)
    stages = dataclasses.replace(script.stages(), decide=triage.triage)
    ctx = dataclasses.replace(ctx, new_sandbox=script.new_sandbox)
    outcome = driver.repair_issue(ctx, DOWN, (), stages)
    # Straight to the sandbox: the scripted in-place restart (which would succeed) never runs.
    assert "in-place" not in script.calls
    assert script.calls[0] == "capture"
    assert outcome.status is SessionStatus.REPAIRED and not outcome.in_place
