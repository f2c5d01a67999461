"""bounded_restart: a restart that hangs in its stop is killed through systemd and reported, not raised."""

from __future__ import annotations

from orchestrator import systemd
from orchestrator.systemd import RestartEnd, bounded_restart
from orchestrator.transport.fake import FakeTransport
from tests.unit.systemd.fakes import Clock, FakeSystemd

UNIT = "cache.service"


def run(fake: FakeSystemd, *, deadline_s: float = 30.0) -> tuple[systemd.RestartOutcome, Clock]:
    clock = Clock()
    outcome = bounded_restart(FakeTransport(fake), UNIT, deadline_s=deadline_s, poll_s=2.0,
                              clock=clock, sleep=clock.sleep)
    return outcome, clock


def test_a_restart_is_queued_without_blocking_after_reset_failed() -> None:
    fake = FakeSystemd()
    outcome, _ = run(fake)
    assert outcome.succeeded and outcome.end is RestartEnd.STARTED
    verbs = [a[1:3] for a in fake.argvs if a[1] != "show"]
    assert verbs == [("reset-failed", "--"), ("--no-block", "restart")]
    assert fake.argvs[2] == ("systemctl", "--no-block", "restart", "--", UNIT)
    assert fake.killed == []


def test_the_old_run_still_active_is_not_taken_for_the_new_one() -> None:
    fake = FakeSystemd()
    outcome, clock = run(fake)
    # The first poll after queueing answers deactivating (the job has not run): at least two polls.
    assert outcome.succeeded
    assert len(clock.sleeps) == 2


def test_a_hung_stop_is_killed_at_the_deadline_and_reported_hung() -> None:
    fake = FakeSystemd(hang={UNIT})
    outcome, clock = run(fake, deadline_s=30.0)
    assert outcome.end is RestartEnd.HUNG and outcome.hung and not outcome.succeeded
    assert (outcome.active_state, outcome.sub_state) == ("deactivating", "stop-sigterm")
    assert 30.0 <= outcome.waited_s < 33.0
    assert fake.killed == [UNIT]
    tail = [c.argv for c in outcome.commands[-2:]]
    assert tail == [("systemctl", "kill", "--signal=SIGKILL", "--", UNIT),
                    ("systemctl", "reset-failed", "--", UNIT)]
    assert "hung (deactivating/stop-sigterm after 30 s)" in outcome.describe()
    assert "killed through systemd" in outcome.describe()
    assert sum(clock.sleeps) >= 30.0


def test_a_unit_that_fails_to_start_is_a_failed_restart_without_a_kill() -> None:
    fake = FakeSystemd(fail={UNIT})
    outcome, _ = run(fake)
    assert outcome.end is RestartEnd.FAILED and outcome.active_state == "failed"
    assert fake.killed == []


def test_a_refused_job_is_a_failed_restart_with_systemctls_words() -> None:
    fake = FakeSystemd(refuse={UNIT})
    outcome, clock = run(fake)
    assert outcome.end is RestartEnd.FAILED
    assert "Unit cache.service not found" in outcome.describe()
    assert clock.sleeps == []


def test_a_unit_that_stays_inactive_is_failed_not_hung() -> None:
    def show_inactive(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[1] == "show":
            return 0, b"ActiveState=inactive\nSubState=dead\nInvocationID=\n", b""
        return 0, b"", b""

    clock = Clock()
    outcome = bounded_restart(FakeTransport(show_inactive), UNIT, deadline_s=30, clock=clock,
                              sleep=clock.sleep)
    assert outcome.end is RestartEnd.FAILED and outcome.active_state == "inactive"
    assert len(clock.sleeps) == 2


def test_no_invocation_id_takes_active_after_the_first_poll() -> None:
    def old_systemd(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[1] == "show":
            return 0, b"ActiveState=active\nSubState=running\n", b""
        return 0, b"", b""

    clock = Clock()
    outcome = bounded_restart(FakeTransport(old_systemd), UNIT, clock=clock, sleep=clock.sleep)
    assert outcome.succeeded and len(clock.sleeps) == 2


def test_kill_and_no_block_argv_put_the_unit_after_a_double_dash() -> None:
    assert systemd.kill_argv("-x") == ["systemctl", "kill", "--signal=SIGKILL", "--", "-x"]
    assert systemd.no_block_argv("restart", "-x") == ["systemctl", "--no-block", "restart", "--", "-x"]


def test_a_unit_that_restart_schedules_again_is_a_failed_restart_at_once() -> None:
    """Restart=on-failure: a start that dies puts the unit in activating/auto-restart, for ever if
    the config stays broken; that is a failed restart, not one to wait out until the deadline."""
    shows: list[int] = []

    def auto_restart(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[1] == "show":
            shows.append(1)
            if len(shows) == 1:   # before the restart: the broken unit's last run
                return 0, b"ActiveState=failed\nSubState=failed\nInvocationID=inv1\n", b""
            return 0, b"ActiveState=activating\nSubState=auto-restart\nInvocationID=inv2\n", b""
        return 0, b"", b""

    clock = Clock()
    outcome = bounded_restart(FakeTransport(auto_restart), UNIT, deadline_s=30, clock=clock,
                              sleep=clock.sleep)
    assert outcome.end is RestartEnd.FAILED and outcome.sub_state == "auto-restart"
    assert len(clock.sleeps) == 1
