"""The watch of the template guest as vmrepair resolves it there: the shipped overrides
(orchestrator/components/defaults.py) merged with what discovery finds on the guest, from output
recorded on it (tests/unit/discover/data). Unit tests that need "the watched template" use this, not
the configured defaults, which hold only what discovery cannot know.

Only the template's own services are kept (systemd's and dbus's units are discovered too, but the
tests written for the five fault classes count probes over these six), in the order they had when
they were hard-coded.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.components.config import WatchConfig, build_watch_config
from orchestrator.discover.build import components
from orchestrator.discover.read import discover
from orchestrator.discover.resolve import merge
from tests.unit.discover.fakes import DiscoveryHost

TEMPLATE_SERVICES = ("nginx", "sampleapp", "sshd", "cron", "rsyslog", "boot")


def template_watch() -> WatchConfig:
    found = components(discover(DiscoveryHost().transport()))
    resolved, _ = merge(build_watch_config(None), found, present=())
    by_name = {c.name: c for c in resolved.components}
    return replace(resolved, components=tuple(by_name[n] for n in TEMPLATE_SERVICES))
