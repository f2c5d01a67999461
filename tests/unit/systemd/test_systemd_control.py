"""Changing units: restart order, timeouts as results, raising on demand."""

from __future__ import annotations

import pytest

from orchestrator import systemd
from orchestrator.errors import CommandFailedError, CommandTimeoutError, ConnectError, TransportError
from orchestrator.systemd.counter import read_back_argv
from orchestrator.transport.fake import FakeTransport
from tests.unit.systemd.fakes import hangs_on


def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    raise CommandTimeoutError("fake: systemctl hung", argv=list(argv))


def test_restart_resets_the_failed_state_first_with_the_default_timeouts() -> None:
    transport = FakeTransport()
    command = systemd.restart(transport, "app.service")
    assert transport.argvs == [("systemctl", "reset-failed", "--", "app.service"),
                               ("systemctl", "restart", "--", "app.service"),
                               tuple(read_back_argv("app.service"))]   # systemd.counter
    assert [c.timeout for c in transport.calls] == [systemd.QUICK_TIMEOUT_S, systemd.JOB_TIMEOUT_S,
                                                    systemd.QUICK_TIMEOUT_S]
    assert command.succeeded and command.argv == ("systemctl", "restart", "--", "app.service")


def test_restart_timeouts_are_the_callers() -> None:
    transport = FakeTransport()
    systemd.restart(transport, "app.service", timeout=90, reset_timeout=30)
    assert [c.timeout for c in transport.calls] == [30, 90, 30]


def test_a_reset_failed_that_fails_does_not_stop_the_restart() -> None:
    transport = FakeTransport(hangs_on("reset-failed"))
    assert systemd.restart(transport, "app.service").succeeded
    assert [c.argv[1] for c in transport.calls] == ["reset-failed", "restart", "show"]


def test_the_restart_outcome_is_the_result() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (1, b"", b"Job for app.service failed.\n") if argv[1] == "restart" else (1, b"", b"")

    command = systemd.restart(FakeTransport(handler), "app.service")
    assert command.exit_status == 1
    assert command.describe() == "`systemctl restart -- app.service` exited 1: Job for app.service failed."


def test_reset_failed_then_runs_any_job_verb() -> None:
    transport = FakeTransport()
    systemd.reset_failed_then(transport, "stop", "-x.service", timeout=5, reset_timeout=5)
    assert transport.argvs == [("systemctl", "reset-failed", "--", "-x.service"),
                               ("systemctl", "stop", "--", "-x.service")]


def test_a_timeout_is_a_result_not_an_error() -> None:
    command = systemd.restart(FakeTransport(hang), "app.service")
    assert command.exit_status is None and command.timed_out and not command.succeeded
    assert command.describe() == "`systemctl restart -- app.service` timed out"
    assert command.as_dict() == {"argv": ["systemctl", "restart", "--", "app.service"],
                                 "exit_status": None, "output": ""}


def test_raise_for_timeout_reraises_the_transports_own_error() -> None:
    command = systemd.restart(FakeTransport(hang), "app.service")
    with pytest.raises(CommandTimeoutError, match="fake: systemctl hung"):
        command.raise_for_timeout("fake")
    ok = systemd.unit_command(FakeTransport(lambda a, s: (5, b"", b"")), "stop", "x.service")
    assert ok.raise_for_timeout("fake") is ok


def test_raise_for_status_words_a_failure_like_transport_check() -> None:
    transport = FakeTransport(lambda argv, stdin: (5, b"", b"Unit x.service not found.\n"), host="target")
    command = systemd.unit_command(transport, "stop", "x.service")
    with pytest.raises(CommandFailedError) as err:
        command.raise_for_status(transport.host)
    assert err.value.message == ("target: command ['systemctl', 'stop', '--', 'x.service'] exited 5: "
                                 "Unit x.service not found.")
    assert (err.value.exit_status, err.value.host) == (5, "target")


def test_job_verbs_wait_longer_than_quick_ones() -> None:
    transport = FakeTransport()
    systemd.unit_command(transport, "stop", "a.service")
    systemd.unit_command(transport, "enable", "a.service")
    systemd.daemon_reload(transport)
    systemd.unit_command(transport, "disable", "a.service", timeout=7)
    assert [c.timeout for c in transport.calls] == [120.0, 60.0, 60.0, 7]
    assert transport.argvs[2] == ("systemctl", "daemon-reload")


def test_output_is_escaped_and_capped() -> None:
    transport = FakeTransport(lambda argv, stdin: (1, b"x" * 100_000, b"\x1b]0;pwned\x07\n"))
    command = systemd.unit_command(transport, "start", "a.service")
    assert "\x1b" not in command.output and len(command.output) <= 4096


def test_an_unreachable_target_raises() -> None:
    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("fake: connection refused", host="fake")

    with pytest.raises(ConnectError):
        systemd.restart(FakeTransport(down), "app.service")


def test_an_unknown_verb_runs_nothing() -> None:
    transport = FakeTransport()
    with pytest.raises(TransportError, match="unknown systemctl verb"):
        systemd.unit_command(transport, "isolate", "rescue.target")
    assert transport.calls == []
