"""Full, reduced or degraded, from the boot diagnosis and then every detection."""

from __future__ import annotations

import pytest

from orchestrator.cli.status import _show_mode
from orchestrator.daemon.mode import NotWorking
from orchestrator.daemon.state import DaemonState
from orchestrator.model import Issue, IssueKind, Severity


def issue(component: str, summary: str, kind: IssueKind = IssueKind.UNIT_FAILED) -> Issue:
    return Issue(component, kind, Severity.WARNING, component, summary, "unit")


def detect(state: DaemonState, *issues: Issue) -> None:
    state.record_detection(issues, duration_s=0.1, probes=3, unavailable=(), new_state="new")


@pytest.fixture
def state() -> DaemonState:
    return DaemonState(target="local", policy="auto-repair", clock=lambda: 1000.0)


def test_every_component_working_is_full_mode(state: DaemonState) -> None:
    state.record_boot_mode(["cron"], [])
    ready = state.readiness()
    assert (ready["mode"], ready["not_working"]) == ("full", [])


def test_an_optional_component_broken_at_boot_is_reduced_mode_until_it_recovers(state: DaemonState) -> None:
    state.record_boot_mode(["cron"], [NotWorking("cron", False, "broken", "cron.service failed")])
    assert state.readiness()["mode"] == "reduced"
    assert state.readiness()["not_working"] == [
        {"component": "cron", "vital": False, "state": "broken", "why": "cron.service failed"}]
    detect(state, issue("cron", "cron.service failed"))
    assert state.readiness()["mode"] == "reduced"
    detect(state)
    assert (state.readiness()["mode"], state.readiness()["not_working"]) == ("full", [])


def test_an_optional_component_that_breaks_later_joins_vital_ones_do_not(state: DaemonState) -> None:
    state.record_boot_mode(["cron"], [])
    detect(state, issue("nginx", "nginx.service failed"), issue("cron", "cron.service inactive"),
           issue("cron", "second issue", IssueKind.HTTP_DOWN))
    ready = state.readiness()
    assert ready["mode"] == "reduced"
    assert ready["not_working"] == [
        {"component": "cron", "vital": False, "state": "issues", "why": "cron.service inactive"}]


def test_a_vital_component_not_working_is_degraded_a_stubbed_one_reduced(state: DaemonState) -> None:
    state.record_boot_mode(["cron"], [NotWorking("app", True, "reduced", "a vmrepair stub stands in"),
                                      NotWorking("cron", False, "missing", "package cron is not installed")])
    assert state.readiness()["mode"] == "reduced"
    state.record_boot_mode([], [NotWorking("nginx", True, "broken", "nginx -t exited 1"),
                                NotWorking("app", True, "reduced", "stub")])
    ready = state.readiness()
    assert ready["mode"] == "degraded"
    assert [n["component"] for n in ready["not_working"]] == ["app", "nginx"]   # type: ignore[index]


def test_status_shows_the_mode_and_what_does_not_work(capsys: pytest.CaptureFixture[str]) -> None:
    _show_mode({"mode": "reduced", "not_working": [
        {"component": "cron", "vital": False, "state": "broken", "why": "cron.service failed"}]})
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "mode: reduced - running with reduced features" in out
    assert "cron" in out and "cron.service failed" in out
    _show_mode({"ready": True})   # an older daemon: no mode, nothing said
    captured = capsys.readouterr()
    assert captured.out + captured.err == ""
