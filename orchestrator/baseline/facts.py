"""Facts recorded beside a baseline's files: package versions and unit states (target output is
untrusted: parsed into a fixed shape, values capped)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from orchestrator.components.config import WatchConfig
from orchestrator.detect.common import cap_evidence, run_command
from orchestrator.detect.units import ShowBatch, show_unit
from orchestrator.transport.base import Transport

DPKG_TIMEOUT_S = 60.0
#: Debian policy 5.6.1; anything else (an option-like "-x", a path) is never passed to dpkg-query.
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_MAX_VERSION = 256


def dpkg_argv(packages: Sequence[str]) -> list[str]:
    # The format's \t and \n are dpkg-query's own escapes, passed literally as in a shell.
    return ["dpkg-query", "-W", "-f", r"${Package}\t${Version}\n", *packages]


def query_packages(transport: Transport, packages: Sequence[str]) -> dict[str, object]:
    """``{"dpkg": bool, "packages": {name: version | None}}``: None for packages not installed (or
    names that are not valid package names); ``dpkg`` is false when the target has no dpkg-query,
    None when it was not asked (no valid names).

    Raises:
        CommandTimeoutError: dpkg-query hung.
        TransportError: the target cannot be reached.
    """
    wanted = sorted(set(packages))
    versions: dict[str, str | None] = dict.fromkeys(wanted)
    valid = [p for p in wanted if _PACKAGE_RE.match(p)]
    if not valid:
        return {"dpkg": None, "packages": versions}
    # dpkg-query exits 1 when some names are unknown but still prints the others: use stdout as is.
    result = run_command(transport, dpkg_argv(valid), timeout=DPKG_TIMEOUT_S)
    if result is None:
        return {"dpkg": False, "packages": versions}
    for line in result.stdout_text.splitlines():
        name, sep, version = line.partition("\t")
        # First line per name wins (multi-arch packages print one line per architecture). An empty
        # version is a package dpkg knows of but that is not installed.
        if sep and name in versions and versions[name] is None and version.strip():
            versions[name] = cap_evidence(version.strip(), _MAX_VERSION)
    return {"dpkg": True, "packages": versions}


def query_units(transport: Transport, watch: WatchConfig) -> dict[str, object]:
    """``{"units": {unit: {"component", "ActiveState", "UnitFileState", "unavailable"}}}``; the states
    are None and ``unavailable`` says why when systemd could not be asked.

    Raises:
        TransportError: the target cannot be reached.
    """
    units: dict[str, dict[str, str | None]] = {}
    owners = {u: c.name for c in reversed(watch.components) for u in (*c.units, *c.sockets)}
    names = list(dict.fromkeys(u for c in watch.components for u in (*c.units, *c.sockets)))
    # One systemctl for every unit (a discovered host has dozens); a unit it did not answer for is
    # asked alone, so a failed batch only costs time.
    batch = ShowBatch()
    batch.prefetch(transport, names)
    for unit in names:
        show = batch.take(unit) or show_unit(transport, unit)
        units[unit] = {
            "component": owners[unit],
            "ActiveState": show.properties.get("ActiveState"),
            "UnitFileState": show.properties.get("UnitFileState"),
            "unavailable": show.unavailable_reason,
        }
    return {"units": units}
