"""systemctl argv builders: unit names always follow "--", malformed requests are caller bugs."""

from __future__ import annotations

import pytest

from orchestrator import systemd
from orchestrator.errors import TransportError


@pytest.mark.parametrize("verb", sorted(systemd.UNIT_VERBS))
def test_every_unit_verb_puts_the_unit_after_double_dash(verb: str) -> None:
    assert systemd.unit_argv(verb, "-H.service") == ["systemctl", verb, "--", "-H.service"]


def test_is_active_with_and_without_quiet() -> None:
    assert systemd.is_active_argv("app.service") == ["systemctl", "is-active", "--", "app.service"]
    assert systemd.is_active_argv("app.service", quiet=True) == [
        "systemctl", "is-active", "--quiet", "--", "app.service"]


def test_show_asks_every_property_in_one_option_then_the_units() -> None:
    argv = systemd.show_argv("a.service", "--help", properties=("Id", "LoadState"))
    assert argv == ["systemctl", "show", "--property=Id,LoadState", "--", "a.service", "--help"]


def test_manager_commands() -> None:
    assert systemd.daemon_reload_argv() == ["systemctl", "daemon-reload"]
    assert systemd.is_system_running_argv() == ["systemctl", "is-system-running"]
    assert systemd.is_system_running_argv(wait=True) == ["systemctl", "is-system-running", "--wait"]
    assert systemd.reboot_argv() == ["systemctl", "--no-block", "reboot"]


def test_an_unknown_verb_is_refused_with_the_known_ones() -> None:
    with pytest.raises(TransportError, match=r"unknown systemctl verb 'kill' \(known: disable, enable"):
        systemd.unit_argv("kill", "app.service")


@pytest.mark.parametrize("unit", ["", "  "])
def test_an_empty_unit_name_is_refused(unit: str) -> None:
    with pytest.raises(TransportError, match="bad systemd unit name"):
        systemd.unit_argv("stop", unit)


@pytest.mark.parametrize(("units", "properties", "message"), [
    ((), ("Id",), "needs at least one unit"),
    (("a.service",), (), "needs a list of property names"),
    (("a.service",), "ActiveState", "needs a list of property names"),
    (("a.service",), ("ActiveState,Evil",), "malformed systemd property name 'ActiveState,Evil'"),
    (("a.service",), ("--all",), "malformed systemd property name '--all'"),
])
def test_show_refuses_malformed_requests(units: tuple[str, ...], properties: tuple[str, ...],
                                         message: str) -> None:
    with pytest.raises(TransportError, match=message):
        systemd.show_argv(*units, properties=properties)
