"""The manager as a whole: is-system-running with reasons, and the failed units, parsed defensively."""

from __future__ import annotations

import pytest

from orchestrator import systemd
from orchestrator.errors import ConnectError
from orchestrator.transport.fake import FakeTransport


def answering(exit_status: int, stdout: bytes, stderr: bytes = b"") -> FakeTransport:
    return FakeTransport(lambda argv, stdin: (exit_status, stdout, stderr))


@pytest.mark.parametrize(("exit_status", "stdout", "state"), [
    (0, b"running\n", "running"), (1, b"degraded\n", "degraded"), (1, b"maintenance\n", "maintenance"),
    (1, b"starting\n", "starting"),
])
def test_system_running_keeps_the_state_word_whatever_the_exit(exit_status: int, stdout: bytes,
                                                               state: str) -> None:
    transport = answering(exit_status, stdout)
    assert systemd.system_running(transport) == systemd.SystemRunning(state)
    assert transport.argvs == [("systemctl", "is-system-running")]
    assert transport.calls[0].timeout == systemd.SHOW_TIMEOUT_S


@pytest.mark.parametrize(("transport", "reason"), [
    (answering(127, b"", b"sh: 1: systemctl: not found\n"), "systemctl is not installed on the target"),
    (answering(1, b"", b"System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                       b"Failed to connect to bus: Host is down\n"),
     "the target does not run systemd as PID 1"),
])
def test_system_running_says_why_it_has_no_state(transport: FakeTransport, reason: str) -> None:
    assert systemd.system_running(transport) == systemd.SystemRunning(unavailable_reason=reason)


def test_offline_and_garbage_are_reasons_not_states() -> None:
    offline = systemd.system_running(answering(1, b"offline\n"))
    assert (offline.state, offline.unavailable_reason is not None) == ("offline", True)
    garbage = systemd.system_running(answering(0, b"\x1b[31mrunning\n", b"\x1b]0;x\x07"))
    assert garbage.state == systemd.UNKNOWN
    assert garbage.unavailable_reason is not None
    assert "\x1b" not in garbage.unavailable_reason


def test_an_unreachable_target_raises() -> None:
    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("gone", host="fake")

    with pytest.raises(ConnectError):
        systemd.system_running(FakeTransport(down))
    with pytest.raises(ConnectError):
        systemd.failed_units(FakeTransport(down))


def test_failed_units_lists_valid_names_in_order() -> None:
    transport = answering(0, b"b.service loaded failed failed B\na.socket loaded failed failed A\n")
    answer = systemd.failed_units(transport)
    assert answer == systemd.FailedUnits(("b.service", "a.socket"))
    assert transport.argvs == [tuple(systemd.list_failed_argv())]


def test_failed_units_with_escaped_names_and_the_root_mount() -> None:
    text = ("dev-disk-by\\x2duuid-0a1b.swap loaded failed failed /dev/disk/by-uuid/0a1b\n"
            "-.mount loaded failed failed Root Mount\n")
    assert systemd.parse_failed_units(text).units == ("dev-disk-by\\x2duuid-0a1b.swap", "-.mount")


def test_failed_units_beyond_the_cap_are_counted() -> None:
    text = "".join(f"u{n}.service loaded failed failed x\n" for n in range(systemd.MAX_FAILED_UNITS + 7))
    answer = systemd.parse_failed_units(text)
    assert (len(answer.units), answer.more) == (systemd.MAX_FAILED_UNITS, 7)


def test_failed_units_non_zero_exit_is_a_reason() -> None:
    answer = systemd.failed_units(answering(1, b"", b"Failed to list units: Connection timed out\n"))
    assert answer.units == ()
    assert answer.unavailable_reason == "systemctl list-units exited 1: Failed to list units: Connection " \
                                       "timed out\n"
