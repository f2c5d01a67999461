"""The ExecStartPre= drop-in: its text, which units may have one, crash-safe install and removal."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orchestrator import systemd
from orchestrator.errors import CommandFailedError, ConfigError
from orchestrator.gate import dropin_path, install_gate, remove_gate, render_dropin
from orchestrator.gate.dropin import gated_unit
from orchestrator.transport.fake import FakeTransport

COMMAND = Path("/usr/local/bin/vmrepair")


def test_dropin_text() -> None:
    assert render_dropin("nginx.service", COMMAND) == (
        "# Written by `vmrepair watch gate install`; remove with "
        "`vmrepair watch gate remove nginx.service`.\n"
        "# The start is refused when vmrepair's pre-start checks of the unit's component fail.\n"
        "# \"+\": the gate runs as root whatever the unit's User= is (it reads vmrepair's config and\n"
        "# state and runs the checks as root); the service itself keeps its own user.\n"
        "[Service]\nExecStartPre=+/usr/local/bin/vmrepair gate nginx.service\n")


def test_a_units_own_escape_reaches_the_gate_as_written() -> None:
    assert render_dropin(r"app@a\x2db.service", COMMAND).endswith(
        "ExecStartPre=+/usr/local/bin/vmrepair gate app@a\\\\x2db.service\n")


@pytest.mark.parametrize("command", ["/opt/my tools/vmrepair", "/usr/bin/vm%irepair", "/usr/bin/a\\b"])
def test_a_command_systemd_would_reinterpret_is_refused(command: str) -> None:
    with pytest.raises(ConfigError, match="cannot be written into ExecStartPre="):
        render_dropin("nginx.service", Path(command))


def test_a_bare_name_means_the_service() -> None:
    assert gated_unit("nginx") == "nginx.service"
    assert gated_unit("getty@tty1.service") == "getty@tty1.service"


@pytest.mark.parametrize(("unit", "message"), [
    ("syslog.socket", "syslog.socket is not a service: only services have ExecStartPre="),
    ("backup.timer", "backup.timer is not a service"),
    ("getty@.service", "getty@.service is a template without an instance"),
    ("-H.service", "'-H.service' is not a unit name"),
    ("a b.service", "'a b.service' is not a unit name"),
    ("../../etc/passwd", "is not a unit name"),
    ("", "'' is not a unit name"),
])
def test_units_that_cannot_be_gated_are_refused(unit: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        gated_unit(unit)
    assert message in caught.value.message


def test_install_writes_the_dropin_then_reloads(tmp_path: Path) -> None:
    transport = FakeTransport()
    path = install_gate(transport, "nginx", unit_dir=tmp_path, command=COMMAND)
    assert path == tmp_path / "nginx.service.d" / "50-vmrepair-gate.conf"
    assert path == dropin_path(tmp_path, "nginx.service")
    assert path.read_text() == render_dropin("nginx.service", COMMAND)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert transport.argvs == [tuple(systemd.daemon_reload_argv())]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_install_again_replaces_it_and_keeps_other_dropins(tmp_path: Path) -> None:
    other = tmp_path / "nginx.service.d" / "10-limits.conf"
    other.parent.mkdir()
    other.write_text("[Service]\nLimitNOFILE=65536\n")
    install_gate(FakeTransport(), "nginx.service", unit_dir=tmp_path, command=Path("/old/vmrepair"))
    path = install_gate(FakeTransport(), "nginx.service", unit_dir=tmp_path, command=COMMAND)
    assert path.read_text().endswith("ExecStartPre=+/usr/local/bin/vmrepair gate nginx.service\n")
    assert other.read_text() == "[Service]\nLimitNOFILE=65536\n"


def test_a_refused_unit_writes_nothing(tmp_path: Path) -> None:
    transport = FakeTransport()
    with pytest.raises(ConfigError):
        install_gate(transport, "syslog.socket", unit_dir=tmp_path, command=COMMAND)
    assert list(tmp_path.iterdir()) == []
    assert transport.argvs == []


def test_a_failed_reload_is_an_error(tmp_path: Path) -> None:
    transport = FakeTransport(lambda argv, stdin: (1, b"", b"Failed to reload daemon: Access denied\n"))
    with pytest.raises(CommandFailedError, match="Access denied"):
        install_gate(transport, "nginx.service", unit_dir=tmp_path, command=COMMAND)


def test_remove_deletes_the_dropin_and_its_emptied_directory(tmp_path: Path) -> None:
    path = install_gate(FakeTransport(), "nginx.service", unit_dir=tmp_path, command=COMMAND)
    transport = FakeTransport()
    assert remove_gate(transport, "nginx.service", unit_dir=tmp_path) == path
    assert not path.parent.exists()
    assert transport.argvs == [tuple(systemd.daemon_reload_argv())]


def test_remove_keeps_other_dropins(tmp_path: Path) -> None:
    path = install_gate(FakeTransport(), "nginx.service", unit_dir=tmp_path, command=COMMAND)
    other = path.parent / "10-limits.conf"
    other.write_text("[Service]\n")
    remove_gate(FakeTransport(), "nginx.service", unit_dir=tmp_path)
    assert [p.name for p in path.parent.iterdir()] == ["10-limits.conf"]


def test_removing_what_is_not_there_changes_nothing(tmp_path: Path) -> None:
    transport = FakeTransport()
    assert remove_gate(transport, "nginx.service", unit_dir=tmp_path) is None
    assert transport.argvs == []
