"""Asking systemd: show with reasons instead of errors, is-active, is-system-running."""

from __future__ import annotations

import pytest

from orchestrator import systemd
from orchestrator.errors import CommandTimeoutError, ConnectError, TransportError
from orchestrator.transport.fake import FakeTransport


def answering(exit_status: int, stdout: bytes, stderr: bytes = b"") -> FakeTransport:
    return FakeTransport(lambda argv, stdin: (exit_status, stdout, stderr))


def test_show_asks_once_and_returns_one_info_per_unit() -> None:
    transport = answering(0, b"Id=a.service\nActiveState=active\n\nId=b.service\nActiveState=failed\n")
    answer = systemd.show(transport, ["a.service", "b.service"], ("Id", "ActiveState"))
    assert transport.argvs == [("systemctl", "show", "--property=Id,ActiveState", "--", "a.service",
                                "b.service")]
    assert transport.calls[0].timeout == systemd.SHOW_TIMEOUT_S
    assert answer.unavailable_reason is None
    assert [(u.id, u.active_state) for u in answer.units] == [
        ("a.service", "active"), ("b.service", "failed")]


def test_show_never_returns_more_units_than_asked() -> None:
    answer = systemd.show(answering(0, b"Id=a.service\n\nId=extra.service\n"), ["a.service"], ("Id",))
    assert [u.id for u in answer.units] == ["a.service"]


@pytest.mark.parametrize(("transport", "reason"), [
    (answering(127, b"", b"sh: 1: systemctl: not found\n"), "systemctl is not installed on the target"),
    (answering(1, b"", b"System has not been booted with systemd as init system (PID 1).\n"),
     "the target does not run systemd as PID 1"),
    (answering(1, b"", b"Failed to connect to bus: No such file or directory\n"),
     "the target does not run systemd as PID 1"),
    (answering(4, b"", b"Access denied\x1b[2J\n"), "systemctl show exited 4: Access denied\\x1b[2J\n"),
])
def test_show_reports_why_systemd_could_not_be_asked(transport: FakeTransport, reason: str) -> None:
    answer = systemd.show(transport, ["a.service"], ("ActiveState",))
    assert (answer.units, answer.unavailable_reason) == ((), reason)


def test_show_timeout_is_a_reason() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    answer = systemd.show(FakeTransport(hang), ["a.service"], ("ActiveState",), timeout=7)
    assert answer.unavailable_reason == "systemctl show did not answer within 7 s"


def test_show_local_transport_without_systemctl_is_a_reason() -> None:
    def missing(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        error = TransportError("local: program 'systemctl' not found", host="local")
        error.__cause__ = FileNotFoundError(2, "No such file or directory", argv[0])
        raise error

    answer = systemd.show(FakeTransport(missing), ["a.service"], ("ActiveState",))
    assert answer.unavailable_reason == "systemctl is not installed on the target"


def test_show_of_an_unreachable_target_raises() -> None:
    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("refused", host="fake")

    with pytest.raises(ConnectError):
        systemd.show(FakeTransport(down), ["a.service"], ("ActiveState",))


def test_show_refuses_a_bare_string_of_units() -> None:
    with pytest.raises(TransportError, match="needs a list of units"):
        systemd.show(FakeTransport(), "a.service", ("ActiveState",))


@pytest.mark.parametrize(("stdout", "state"), [
    (b"active\n", "active"), (b"failed\n", "failed"), (b"\x1b[31mbad\n", "unknown"), (b"", "unknown"),
])
def test_active_state_reads_one_state_word(stdout: bytes, state: str) -> None:
    transport = answering(3, stdout)
    assert systemd.active_state(transport, "app.service", timeout=5) == state
    assert transport.argvs == [("systemctl", "is-active", "--", "app.service")]


@pytest.mark.parametrize(("stdout", "state"), [
    (b"running\n", "running"), (b"degraded\n", "degraded"), (b"  \n", "unknown"),
    (b"\x1b]0;pwned\x07\n", "unknown"),
])
def test_system_state_reads_one_state_word(stdout: bytes, state: str) -> None:
    transport = answering(1, stdout)
    assert systemd.system_state(transport) == state
    assert transport.argvs == [("systemctl", "is-system-running")]
    assert transport.calls[0].timeout == 30.0


def test_system_state_of_an_unreachable_target_is_unknown() -> None:
    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("refused", host="fake")

    assert systemd.system_state(FakeTransport(down)) == "unknown"
