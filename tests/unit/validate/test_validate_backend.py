"""testinfra over our Transport: the command lines testinfra builds, how exits are read, hostile output."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import CommandTimeoutError
from orchestrator.transport.base import CommandResult
from orchestrator.transport.fake import FakeTransport
from orchestrator.transport.local import LocalTransport
from orchestrator.validate.backend import (
    CHECK_MAX_OUTPUT,
    CHECK_TIMEOUT_S,
    GuestCheckError,
    GuestHost,
    make_testinfra_host,
)
from tests.unit.validate.fakes import FakeGuest


def _shell(transport: FakeTransport) -> list[str]:
    """The shell command of every call (each must be a ``sh -c CMD`` argv)."""
    assert all(argv[:2] == ("sh", "-c") and len(argv) == 3 for argv in transport.argvs)
    return [argv[2] for argv in transport.argvs]


def test_file_exists_runs_test_e_and_reads_the_exit_status(guest: FakeGuest,
                                                           transport: FakeTransport) -> None:
    guest.commands.update({"test -e /etc/nginx/nginx.conf": (0, b"", b""),
                           "test -e /etc/nginx/gone": (1, b"", b"")})
    host = make_testinfra_host(transport)
    assert host.file("/etc/nginx/nginx.conf").exists is True
    assert host.file("/etc/nginx/gone").exists is False
    # uname -s first: testinfra picks the File implementation from the OS type.
    assert _shell(transport)[-2:] == ["test -e /etc/nginx/nginx.conf", "test -e /etc/nginx/gone"]
    assert all(call.timeout == CHECK_TIMEOUT_S for call in transport.calls)


def test_arguments_are_quoted_by_testinfra(guest: FakeGuest, transport: FakeTransport) -> None:
    host = make_testinfra_host(transport)
    guest.commands["test -e '/tmp/a b;rm -rf /'"] = (1, b"", b"")
    assert host.file("/tmp/a b;rm -rf /").exists is False
    host.run("echo %s", "$(reboot)`id`'")
    assert _shell(transport)[-1] == "echo '$(reboot)`id`'\"'\"''"


def test_service_is_running_checks_systemd_then_systemctl(guest: FakeGuest,
                                                          transport: FakeTransport) -> None:
    host = make_testinfra_host(transport)
    assert host.service("nginx.service").is_running is True
    assert host.service("sampleapp.service").is_running is False
    commands = _shell(transport)
    assert "test -d /run/systemd/system/" in commands
    assert commands[-2:] == ["systemctl is-active nginx.service", "systemctl is-active sampleapp.service"]


def test_hostile_output_is_decoded_without_a_locale_round_trip(guest: FakeGuest,
                                                               transport: FakeTransport) -> None:
    hostile = b"\xff\xfe\x1b[2J\x00" + b"`" * 10 + b"\n" + b"A" * (2 * CHECK_MAX_OUTPUT)
    guest.commands["cat /var/log/x"] = (3, hostile, b"\xc3\x28 bad utf-8")
    out = make_testinfra_host(transport).run("cat /var/log/x")
    assert out.rc == 3
    assert out.stdout.startswith("\ufffd\ufffd\x1b[2J\x00``````````")
    assert len(out.stdout_bytes) == CHECK_MAX_OUTPUT  # the transport's cap applies
    assert out.stderr == "\ufffd( bad utf-8"
    # No `python3 -c 'import locale...'` probe: we decode as UTF-8 ourselves.
    assert _shell(transport) == ["cat /var/log/x"]


def test_timeout_per_call_and_transport_errors_propagate(guest: FakeGuest) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> CommandResult | tuple[int, bytes, bytes]:
        if "hang" in argv[2]:
            raise CommandTimeoutError("vm: hung", argv=list(argv))
        return guest(argv, stdin)

    transport = FakeTransport(handler, host="vm")
    host = make_testinfra_host(transport, timeout=7)
    host.run("true", timeout=3)
    host.run("true")
    assert [c.timeout for c in transport.calls] == [3, 7]
    with pytest.raises(CommandTimeoutError):
        host.run("hang")
    with pytest.raises(CommandTimeoutError):  # our errors are not re-wrapped by GuestHost
        GuestHost(transport).run(["hang"])


def test_guest_host_refuses_service_checks_without_systemd(guest: FakeGuest,
                                                           transport: FakeTransport) -> None:
    guest.systemd = False
    with pytest.raises(GuestCheckError, match="systemd is not running in the guest"):
        GuestHost(transport).service_is_running("nginx.service")
    # Never fell back to SysV `service ... status`, which could answer for the wrong thing.
    assert not any("service" in cmd.split()[0] for cmd in _shell(transport))


def test_unexpected_answers_become_guest_check_errors(guest: FakeGuest, transport: FakeTransport) -> None:
    guest.commands["systemctl is-active nginx.service"] = (2, b"\x1b[31mgarbage", b"")
    guest.commands["systemctl is-enabled nginx.service"] = (1, b"bad-setting\n", b"")
    host = GuestHost(transport)
    with pytest.raises(GuestCheckError, match=r"could not check whether nginx\.service is running") as info:
        host.service_is_running("nginx.service")
    assert "\x1b" not in info.value.message
    with pytest.raises(GuestCheckError, match="Unable to determine state"):
        host.service_is_enabled("nginx.service")


def test_run_keeps_percent_signs_and_quotes_argv(guest: FakeGuest, transport: FakeTransport) -> None:
    guest.commands["curl --write-out '%{http_code}' 'http://127.0.0.1/a b'"] = (0, b"204", b"")
    out = GuestHost(transport).run(["curl", "--write-out", "%{http_code}", "http://127.0.0.1/a b"])
    assert (out.exit_status, out.stdout, out.succeeded) == (0, "204", True)


def test_port_listening_on_the_wildcard_counts_for_loopback(guest: FakeGuest,
                                                           transport: FakeTransport) -> None:
    guest.listening = ["0.0.0.0:8080", "127.0.0.1:9000"]
    host = GuestHost(transport)
    assert host.port_is_listening("127.0.0.1", 8080) is True   # testinfra alone says False here
    assert host.port_is_listening("127.0.0.1", 9000) is True
    assert host.port_is_listening("127.0.0.1", 80) is False


def test_socket_check_without_ss_or_netstat_fails_loudly(guest: FakeGuest, transport: FakeTransport) -> None:
    guest.commands["command -v ss"] = (1, b"", b"")
    with pytest.raises(GuestCheckError, match=r"could not check whether tcp://127\.0\.0\.1:80"):
        GuestHost(transport).port_is_listening("127.0.0.1", 80)


def test_end_to_end_through_a_real_shell(tmp_path: Path) -> None:
    present = tmp_path / "it's here; `true`"
    present.write_text("x")
    host = make_testinfra_host(LocalTransport())
    assert host.file(str(present)).exists is True
    assert host.file(str(tmp_path / "absent")).exists is False
    assert host.run("printf %s", "$(id) `id` ; '\"").stdout == "$(id) `id` ; '\""
    assert GuestHost(LocalTransport()).run(["printf", "%s|%%", "a b"]).stdout == "a b|%"
