"""The steps a generated change is followed by, so that the validation sees its effect: the service
reads its files again (reset-failed, restart, wait until it stays up), and systemd reads unit files
again after one of them changed."""

from __future__ import annotations

from orchestrator.model import Component
from orchestrator.repair.generate.proposal import RawStep, literal
from orchestrator.systemd import is_unit_file


def restart(unit: str) -> tuple[RawStep, ...]:
    name = literal(unit)
    return ({"unit": {"name": name, "action": "reset-failed"}},
            {"unit": {"name": name, "action": "restart"}},
            {"wait_active": {"unit": name}})


def start(unit: str) -> tuple[RawStep, ...]:
    name = literal(unit)
    return ({"unit": {"name": name, "action": "reset-failed"}},
            {"unit": {"name": name, "action": "start"}},
            {"wait_active": {"unit": name}})


def after_change(component: Component, paths: tuple[str, ...] | list[str]) -> tuple[RawStep, ...]:
    """What follows a change of ``paths``: a daemon-reload when a unit file is among them, then a
    restart of the component's first unit (nothing for a component without units)."""
    steps: tuple[RawStep, ...] = ()
    if any(is_unit_file(p) for p in paths):
        steps += ({"unit": {"action": "daemon-reload"}},)
    if component.units:
        steps += restart(component.units[0])
    return steps
