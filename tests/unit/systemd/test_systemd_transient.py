"""Commands run as a transient unit of the target's systemd (outside the daemon's sandbox)."""

from __future__ import annotations

import pytest

from orchestrator.errors import CommandTimeoutError, TransportError
from orchestrator.systemd.transient import run_outside_sandbox, transient_argv, transient_unit_name
from orchestrator.transport.fake import FakeTransport

APT = ("apt-get", "install", "--reinstall", "-y", "nginx")


def booted(answer: tuple[int, bytes, bytes]):  # type: ignore[no-untyped-def]
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("test", "-d"):
            return 0, b"", b""
        return answer
    return handler


def test_the_command_runs_as_a_transient_unit_and_its_own_result_comes_back() -> None:
    transport = FakeTransport(booted((100, b"", b"E: Could not get lock\n")))
    result = run_outside_sandbox(transport, "reinstall", APT, timeout=900, max_output=4096)
    check, wrapped = transport.argvs
    assert check == ("test", "-d", "/run/systemd/system")
    assert wrapped[0] == "systemd-run" and wrapped[wrapped.index("--") + 1:] == APT
    assert "--wait" in wrapped and "--pipe" in wrapped and "--collect" in wrapped
    # systemd stops it before the caller's own deadline: the unit never outlives the run.
    assert "--property=RuntimeMaxSec=895" in wrapped
    assert (result.exit_status, result.stderr) == (100, b"E: Could not get lock\n")
    assert transport.calls[1].timeout == 900


def test_without_systemd_as_pid_1_the_command_runs_directly() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (1, b"", b"") if argv[0] == "test" else (0, b"done\n", b"")

    transport = FakeTransport(handler)
    result = run_outside_sandbox(transport, "reinstall", APT, timeout=60, max_output=4096)
    assert transport.argvs[1] == APT
    assert result.stdout == b"done\n"


def test_a_timeout_is_the_callers() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "systemd-run":
            raise CommandTimeoutError("fake: hung", argv=list(argv))
        return 0, b"", b""

    with pytest.raises(CommandTimeoutError):
        run_outside_sandbox(FakeTransport(handler), "reinstall", APT, timeout=60, max_output=4096)


def test_unit_names_are_unique_and_purposes_checked() -> None:
    first, second = transient_unit_name("reinstall"), transient_unit_name("reinstall")
    assert first != second and first.startswith("vmrepair-reinstall-") and first.endswith(".service")
    for bad in ("", "Re", "x;y", "a" * 50, "-x"):
        with pytest.raises(TransportError):
            transient_unit_name(bad)
    with pytest.raises(TransportError):
        transient_argv("u.service", [], runtime_max_s=10)
    with pytest.raises(TransportError):
        transient_argv("u.service", ["apt-get", ""], runtime_max_s=10)
