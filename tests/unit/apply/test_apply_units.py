"""systemctl argv for unit actions and for putting units back as they were before apply."""

from __future__ import annotations

import pytest

from orchestrator.apply.units import restore_unit, unit_state
from orchestrator.systemd.counter import read_back_argv
from tests.unit.apply.fakes import systemd_transport

RESTART = [("systemctl", "reset-failed", "--", "app.service"), ("systemctl", "restart", "--", "app.service"),
           tuple(read_back_argv("app.service"))]


@pytest.mark.parametrize(("prior", "argvs"), [
    ("active", RESTART),
    ("failed", RESTART),
    ("inactive", [("systemctl", "stop", "--", "app.service")]),
])
def test_restore_unit_returns_it_to_its_prior_state(prior: str, argvs: list[tuple[str, ...]]) -> None:
    transport = systemd_transport()
    assert restore_unit(transport, "app.service", prior, timeout=5) is None
    assert transport.argvs == argvs


def test_restore_failure_of_a_running_unit_is_an_error() -> None:
    transport = systemd_transport(failing=[("systemctl", "restart", "--", "app.service")])
    error = restore_unit(transport, "app.service", "active", timeout=5)
    assert error is not None and error.startswith("restore unit app.service (was active): target: command")


def test_unit_state_reads_is_active() -> None:
    transport = systemd_transport({"app.service": "failed", "odd.service": "\x1b[31mbad"})
    assert unit_state(transport, "app.service", timeout=5) == "failed"
    assert unit_state(transport, "odd.service", timeout=5) == "unknown"
