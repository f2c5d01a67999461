"""HealthMonitor against a scripted target: retries, restarts, escalation, holds, flapping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.errors import PipelineError
from orchestrator.health import HealthEventKind
from orchestrator.model import Component, HttpCheck, Severity
from tests.unit.health.harness import APP, HEALTH, QUIET, READY, WEB, WINDOW, Harness, kinds


def test_healthy_components_yield_no_events_and_no_restart(make: Callable[..., Harness]) -> None:
    h = make(APP, QUIET)
    assert h.monitor.components == ("app",)
    assert h.poll() == []
    assert h.audit.records == []
    # The endpoints of `app`, then one `systemctl show` of every watched unit (restart loops).
    assert [a[-1] for a in h.transport.argvs] == [HEALTH, READY, "cron.service"]
    assert h.transport.argvs[-1][:2] == ("systemctl", "show")
    assert h.transport.argvs[-1][-3:] == ("--", "app.service", "cron.service")
    assert h.monitor.status()["app"]["restart_loop"] == ""


def test_a_blip_is_retried_with_backoff_and_does_not_count(make: Callable[..., Harness]) -> None:
    h = make()
    h.target.set(READY, "503", "503", "200")
    assert h.poll() == []
    assert h.sleeps == [1.0, 2.0]
    assert h.monitor.status()["app"]["consecutive_failures"] == 0


def test_restart_after_n_consecutive_failed_polls(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=3)
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed"]
    second = h.poll()
    assert second[0].details["consecutive"] == "2/3"
    assert h.restarts() == []
    third = h.poll()
    assert kinds(third) == ["failed", "restarted"]
    assert h.restarts() == ["app.service"]
    assert ("systemctl", "reset-failed", "--", "app.service") in h.transport.argvs
    assert third[0].summary == f"{HEALTH} answered 503, expected 200"
    recovery = h.audit.records[-1]
    assert (recovery["event"], recovery["status"], recovery["details"]["action"]) == (
        "recovery", "ok", "restart")
    assert h.escalations == []


def test_recovery_is_reported_once(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1)
    h.target.set(HEALTH, "503", "503", "503", "200")  # three tries per poll: one failed poll
    assert kinds(h.poll()) == ["failed", "restarted"]
    events = h.poll()
    assert kinds(events) == ["recovered"]
    assert events[0].summary == "app: every endpoint answers again"
    assert h.poll() == []


def test_escalates_instead_of_restarting_after_m_restarts_in_the_window(
    make: Callable[..., Harness],
) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=2, restart_window_s=WINDOW)
    h.target.set(HEALTH, "000")
    assert kinds(h.poll()) == ["failed", "restarted"]
    assert kinds(h.poll()) == ["failed", "restarted"]
    third = h.poll()
    assert kinds(third) == ["failed", "escalated"]
    reason = "endpoints keep failing after 2 restarts within 900 s"
    assert h.escalations == [("app", reason)]
    assert third[1].summary == f"app: {reason}"
    escalation = h.audit.records[-1]
    assert (escalation["event"], escalation["status"], escalation["durable"]) == (
        "health", "escalated", True)
    assert escalation["details"]["summary"] == f"app: {reason}"
    held = h.poll()
    assert kinds(held) == ["failed", "held"]
    assert "waiting for the repair pipeline (no restart)" in held[1].summary
    assert len(h.restarts()) == 2
    assert len(h.escalations) == 1


def test_restarts_are_allowed_again_once_the_window_has_passed(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=1, restart_window_s=WINDOW)
    h.target.set(HEALTH, "503")
    assert kinds(h.poll()) == ["failed", "restarted"]
    assert kinds(h.poll()) == ["failed", "escalated"]
    assert kinds(h.poll(advance=WINDOW)) == ["failed", "restarted"]
    assert h.monitor.status()["app"]["escalations"] == 1


@pytest.mark.parametrize("failures_before_restart", [1, 3])
def test_flapping_service_causes_no_restart_storm(
    make: Callable[..., Harness], failures_before_restart: int,
) -> None:
    h = make(failures_before_restart=failures_before_restart, restarts_before_escalation=3,
             restart_window_s=WINDOW)
    h.target.set(HEALTH, *(["503", "503", "503", "200"] * 30))  # each poll retries 3 times
    events = [e for _ in range(40) for e in h.poll(advance=10.0)]  # 400 s: inside one window
    restarts = [e for e in events if e.kind is HealthEventKind.RESTARTED]
    if failures_before_restart == 1:
        assert len(restarts) == 3
        assert len(h.escalations) == 1
    else:
        # Pass and fail alternate: never three failed polls in a row, so never an action.
        assert restarts == []
        assert h.escalations == []
    assert len(h.restarts()) == len(restarts)


def test_failing_config_test_escalates_without_restarting(make: Callable[..., Harness]) -> None:
    h = make(WEB, failures_before_restart=1)
    h.target.set("http://127.0.0.1:80/", "502")
    h.target.host.config_tests["nginx"] = (1, b"nginx: [emerg] unknown directive \"sever\"\n")
    events = h.poll()
    assert kinds(events) == ["failed", "vital_check_failed", "escalated"]
    assert h.restarts() == []
    (name, reason), = h.escalations
    assert name == "web"
    assert reason == "its config test fails (web: config test `nginx -t` exited 1); a restart would not help"
    error = next(r for r in h.audit.records if r["details"].get("health_event") == "vital_check_failed")
    assert error["event"] == "error"
    assert "unknown directive" in error["details"]["output"]


def test_missing_config_test_program_is_not_a_license_to_restart(make: Callable[..., Harness]) -> None:
    h = make(WEB, failures_before_restart=1)
    h.target.set("http://127.0.0.1:80/", "502")
    h.target.host.missing.add("nginx")
    h.poll()
    assert h.restarts() == []
    assert h.escalations[0][1].startswith("its config test cannot run")


def test_passing_config_test_allows_the_restart(make: Callable[..., Harness]) -> None:
    h = make(WEB, failures_before_restart=1)
    h.target.set("http://127.0.0.1:80/", "502")
    assert kinds(h.poll()) == ["failed", "restarted"]
    assert ("nginx", "-t") in h.transport.argvs


def test_failed_restart_is_reported_and_still_counts(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=1)
    h.target.set(HEALTH, "503")
    h.target.systemd.fail.add("app.service")
    events = h.poll()
    assert kinds(events) == ["failed", "restart_failed"]
    assert events[1].summary == "restart of app.service failed (failed/failed)"
    assert h.audit.records[-1]["status"] == "failed"
    assert kinds(h.poll()) == ["failed", "escalated"]


def test_component_without_units_is_escalated(make: Callable[..., Harness]) -> None:
    h = make(Component(name="ext", http=(HttpCheck(HEALTH),)), failures_before_restart=1)
    h.target.set(HEALTH, "503")
    h.poll()
    assert h.escalations == [("ext", "endpoints keep failing and it has no unit to restart")]


def test_failed_escalation_is_audited_and_the_hold_kept(make: Callable[..., Harness]) -> None:
    def refuse(name: str, reason: str, severity: Severity, /) -> None:
        raise PipelineError("the pipeline is busy", stage="queue")

    h = make(escalate=refuse, failures_before_restart=1, restarts_before_escalation=1)
    h.target.set(HEALTH, "503")
    h.poll()
    h.poll()
    assert h.audit.records[-1]["details"]["message"] == "escalation failed: the pipeline is busy"
    assert kinds(h.poll()) == ["failed", "held"]


def test_unavailable_probes_count_nothing_and_are_said_once(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1)
    h.target.host.missing.add("curl")
    first = h.poll()
    assert kinds(first) == ["unavailable"]
    assert "curl is not installed on the target" in first[0].summary
    assert h.poll() == []
    assert h.restarts() == []
    assert h.sleeps == []


def test_escalations_of_a_flapping_service_add_up_across_windows(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=1, restart_window_s=100.0)
    h.target.set(HEALTH, *(["503", "503", "503", "200"] * 100))
    for _ in range(60):  # 600 s of pass, fail, pass, fail ... every 10 s
        h.poll(advance=10.0)
    assert h.monitor.status()["app"]["escalations"] == len(h.escalations) > 1


def test_escalations_reset_once_stable_for_a_window(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=1, restart_window_s=100.0)
    h.target.set(HEALTH, "503")
    h.poll()
    h.poll()
    assert h.monitor.status()["app"]["escalations"] == 1
    h.target.set(HEALTH, "200")
    h.poll(advance=50.0)
    assert h.monitor.status()["app"]["escalations"] == 1  # passing, but not yet for a whole window
    h.poll(advance=60.0)
    assert h.monitor.status()["app"]["escalations"] == 0


# -- bounded restarts (issue 16) -------------------------------------------------------------------

def test_a_hung_restart_is_killed_and_reported_as_a_failed_restart(make: Callable[..., Harness]) -> None:
    h = make(failures_before_restart=1, restarts_before_escalation=1, restart_deadline_s=30)
    h.target.set(HEALTH, "503")
    h.target.systemd.hang.add("app.service")
    began = h.clock.now
    events = h.poll()
    assert kinds(events) == ["failed", "restart_failed"]
    assert "hung (deactivating/stop-sigterm" in events[1].summary
    assert events[1].details["hung_killed"] == "app.service"
    assert h.target.systemd.killed == ["app.service"]
    assert h.clock.now - began >= 30
    assert h.audit.records[-1]["status"] == "failed"
    # It counted as a restart: the next failing poll escalates.
    assert kinds(h.poll()) == ["failed", "escalated"]


# -- restart loops of any unit ---------------------------------------------------------------------

def test_a_unit_without_http_checks_that_keeps_restarting_is_a_restart_loop(
    make: Callable[..., Harness]
) -> None:
    h = make(APP, QUIET, quarantine_after_unit_restarts=3)
    cron = h.target.systemd.unit("cron.service")
    cron.n_restarts = 7  # already high at the first look: when those happened is unknown
    assert h.poll() == []
    cron.n_restarts = 9
    assert h.poll() == []
    cron.n_restarts = 10
    events = h.poll()
    assert kinds(events) == ["restart_loop"]
    assert events[0].component == "quiet" and events[0].details == {"unit": "cron.service", "restarts": "3"}
    assert "cron.service restarted itself 3 times within 900 s" in events[0].summary
    assert h.monitor.status()["quiet"] == {"restart_loop": events[0].summary}
    assert h.audit.records[-1]["event"] == "error"
    cron.n_restarts = 11
    assert h.poll() == []  # reported once per loop


def test_a_loop_ends_after_a_quiet_window_and_a_deliberate_start_resets_the_count(
    make: Callable[..., Harness]
) -> None:
    h = make(QUIET, quarantine_after_unit_restarts=2)
    cron = h.target.systemd.unit("cron.service")
    h.poll()
    cron.n_restarts = 2
    assert kinds(h.poll()) == ["restart_loop"]
    h.poll(advance=WINDOW / 2)
    assert "quiet" in h.monitor.status()  # the restarts are still within the window
    h.poll(advance=WINDOW / 2 + 1)
    assert h.monitor.status() == {}
    cron.n_restarts = 0  # someone started it on purpose
    h.poll()
    cron.n_restarts = 1
    assert h.poll() == []


def test_start_limit_hit_is_a_restart_loop(make: Callable[..., Harness]) -> None:
    h = make(QUIET)
    cron = h.target.systemd.unit("cron.service")
    cron.active, cron.sub, cron.result, cron.n_restarts = "failed", "failed", "start-limit-hit", 4
    events = h.poll()
    assert kinds(events) == ["restart_loop"]
    assert "hit its start limit" in events[0].summary
