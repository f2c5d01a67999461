"""Which of a component's probes the gate runs, and what their results decide.

A probe qualifies when what it checks is on disk before the service runs (its families, by name
prefix, in :data:`PRESTART_PREFIXES`):

- ``config:`` the component's own config test (``nginx -t``): made to run without the daemon;
- ``dpkg:`` / ``pkgmeta:`` the package's files are there, intact, with the owners and modes it ships;
- ``modes:`` owners and modes as the healthy baseline recorded them;
- ``symlinks:`` no config symlink dangles; ``writable:`` the data directories exist and the
  service's account can write them; ``fstab:`` and ``jsonl:`` files the component reads at start.

Left out, and why:

- ``unit:`` the unit is activating while its ``ExecStartPre=`` runs: its state is the outcome being
  decided, and a restart loop would then refuse every later start, which is the opposite of healing;
- ``http:`` and ``port:`` answer only once the service runs;
- the host-wide probes (disk, inodes, memory, kernel, sysdir, system) belong to no component: a host
  condition is for the repair pipeline, and keeping a healthy service down does not help with it.

The gate refuses only on a *critical* failure of a qualifying probe (the detector's own verdict that
the service cannot work), never on a warning or on a probe that could not run: when in doubt, start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from orchestrator.agent.api import AgentApi
from orchestrator.components.config import WatchConfig
from orchestrator.detect import (
    Detector,
    config_test,
    fstab,
    jsonl,
    modes,
    packages,
    pkgmeta,
    symlinks,
    writable,
)
from orchestrator.errors import VmRepairError
from orchestrator.gate.decide import Verdict
from orchestrator.model import REPORT_ONLY, Component, ProbeResult, Severity
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

PRESTART_PREFIXES: tuple[str, ...] = (
    config_test.PREFIX, packages.PREFIX, pkgmeta.PREFIX, modes.PREFIX, symlinks.PREFIX,
    writable.PREFIX, fstab.PREFIX, jsonl.PREFIX,
)


def owner_of(watch: WatchConfig, unit: str) -> Component | None:
    """The component whose units (or sockets) name ``unit``; a template's instance
    (``getty@tty1.service``) is owned by the component naming the template (``getty@.service``)."""
    for wanted in (unit, _template_of(unit)):
        for comp in watch.components:
            if wanted and wanted in (*comp.units, *comp.sockets):
                return comp
    return None


def _template_of(unit: str) -> str | None:
    prefix, at, rest = unit.partition("@")
    if not at or "." not in rest:
        return None
    return f"{prefix}@.{rest.rpartition('.')[2]}"


def prestart_probes(detector: Detector, component: str) -> list[str]:
    """The planned probes of ``component`` that can run before it starts, in plan order."""
    return [name for name in detector.probe_names
            if detector.owner_of(name) == component and name.startswith(PRESTART_PREFIXES)]


def evaluate(watch: WatchConfig, unit: str, transport: Transport, agent: AgentApi) -> Verdict:
    """Run the pre-start probes of the component owning ``unit`` and judge them. A unit no
    component owns is allowed: nothing is known about it.

    Raises:
        TransportError: the host cannot be asked (the caller applies ``gate.on_error``).
    """
    comp = owner_of(watch, unit)
    if comp is None:
        return Verdict(unit, None, allowed=True, reason=f"{unit} belongs to no watched component")
    detector = Detector(watch, transport, agent)
    names = prestart_probes(detector, comp.name)
    if not names:
        return Verdict(unit, comp.name, allowed=True,
                       reason=f"{comp.name} has no check that can run before it starts")
    outcomes = detector.run_named(names)
    results: list[ProbeResult] = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, ProbeResult):
            results.append(outcome)
        else:
            # One probe that cannot run is no evidence against the service; the others still count.
            log.warning("gate %s: probe %s did not run: %s", unit, name,
                        outcome.message if isinstance(outcome, VmRepairError) else outcome)
    return judge(unit, comp.name, names, results)


def judge(unit: str, component: str, checked: Sequence[str], results: Sequence[ProbeResult]) -> Verdict:
    """Refused when a result failed critically (and is not a report-only drift); else allowed."""
    failed = tuple(r for r in results if _is_blocking(r))
    warned = tuple(r for r in results if not r.ok and not r.is_unavailable and r not in failed)
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Verdict(unit, component, allowed=False, reason=f"{first.probe}: {first.summary}{more}",
                       failed=failed, warnings=warned, checked=tuple(checked))
    reason = f"{len(checked)} pre-start check(s) of {component} pass"
    if warned:
        reason += f" ({len(warned)} warning(s): {warned[0].probe}: {warned[0].summary})"
    return Verdict(unit, component, allowed=True, reason=reason, warnings=warned, checked=tuple(checked))


def _is_blocking(result: ProbeResult) -> bool:
    return (not result.ok and not result.is_unavailable and result.severity is Severity.CRITICAL
            and REPORT_ONLY not in result.evidence)
