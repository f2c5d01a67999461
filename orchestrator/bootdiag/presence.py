"""Is a component there at all? Its units known to systemd, its packages installed (dpkg).

Units are asked with ``systemctl show`` (:func:`orchestrator.detect.units.show_unit`): ``LoadState=
not-found`` means no unit file anywhere on the load path, which is what ``systemctl cat`` would
report, with the no-systemd cases already told apart. Packages are asked with ``dpkg-query``'s
``${Status}``: its last word is dpkg's state of the package (``installed``, ``config-files`` after a
remove, ``half-configured`` after a failed postinst ...); a version alone cannot tell those apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.detect.common import run_command
from orchestrator.detect.units import show_unit
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component
from orchestrator.transport.base import Transport

DPKG_TIMEOUT_S = 60.0
#: Debian policy 5.6.1 (as baseline.facts): anything else is never passed to dpkg-query.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
#: dpkg states of a package that is in place (trigger states: installed, triggers still to run).
_INSTALLED = frozenset({"installed", "triggers-awaited", "triggers-pending"})
#: States after which dpkg itself knows the package is not whole.
_HALF = frozenset({"half-installed", "unpacked", "half-configured"})
_STATE_RE = re.compile(r"^[a-z-]{1,32}$")


@dataclass(frozen=True)
class Presence:
    """``missing``: what is gone or half-installed (human-readable); ``unavailable``: checks that
    could not run; ``load_states``: each unit's LoadState (absent when systemd could not be asked);
    ``is_checked``: at least one unit or package could be asked about."""

    missing: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()
    load_states: dict[str, str] = field(default_factory=dict)
    is_checked: bool = False


def dpkg_status_argv(packages: Sequence[str]) -> list[str]:
    # The format's \t and \n are dpkg-query's own escapes, passed literally as in a shell.
    return ["dpkg-query", "-W", r"--showformat=${Package}\t${Status}\n", *packages]


def package_states(transport: Transport, packages: Sequence[str]) -> dict[str, str] | None:
    """dpkg's state word of each package (``not-installed`` for packages dpkg does not know, or
    names that are not package names); None when the target has no dpkg-query or it hung.

    Raises:
        TransportError: the target cannot be reached.
    """
    wanted = sorted(set(packages))
    states = dict.fromkeys(wanted, "not-installed")
    valid = [p for p in wanted if PACKAGE_RE.match(p)]
    if not valid:
        return states
    try:
        result = run_command(transport, dpkg_status_argv(valid), timeout=DPKG_TIMEOUT_S)
    except CommandTimeoutError:
        return None
    if result is None:
        return None
    # Exit 1 when some names are unknown; the others are still printed. First line per name wins
    # (multi-arch packages print one line per architecture).
    seen: set[str] = set()
    for line in result.stdout_text.splitlines():
        name, sep, status = line.partition("\t")
        words = status.split()
        if sep and name in states and name not in seen and words:
            # Untrusted output: only a word shaped like a dpkg state is kept.
            states[name] = words[-1] if _STATE_RE.match(words[-1]) else "unknown-state"
            seen.add(name)
    return states


def check_presence(transport: Transport, component: Component) -> Presence:
    """Units and packages of ``component``.

    Raises:
        TransportError: the target cannot be reached.
    """
    missing: list[str] = []
    unavailable: list[str] = []
    load_states: dict[str, str] = {}
    for unit in component.units:
        show = show_unit(transport, unit)
        if show.unavailable_reason is not None:
            unavailable.append(f"unit {unit}: {show.unavailable_reason}")
            continue
        load_states[unit] = show.properties.get("LoadState", "")
        if load_states[unit] == "not-found":
            missing.append(f"unit {unit} has no unit file")
    packages_checked = False
    if component.packages:
        states = package_states(transport, component.packages)
        if states is None:
            unavailable.append("packages: dpkg-query is not available on the target")
        else:
            packages_checked = True
            for name, state in states.items():
                if state in _HALF:
                    missing.append(f"package {name} is {state}")
                elif state not in _INSTALLED:
                    missing.append(f"package {name} is not installed ({state})")
    return Presence(tuple(missing), tuple(unavailable), load_states,
                    is_checked=packages_checked or bool(load_states))
