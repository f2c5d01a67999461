"""The drop-in that makes systemd ask the gate: ``UNIT.d/50-vmrepair-gate.conf`` holding
``ExecStartPre=+COMMAND gate UNIT`` (``+``: with full privileges, whatever the unit's ``User=``).
Written crash-safe, then systemd reloads its units.

Only service units qualify (``ExecStartPre=`` is a [Service] setting), and of templates only
instances: ``foo@.service.d`` would gate every instance with the template's name, which no
component owns by that name.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from orchestrator import systemd
from orchestrator.errors import ConfigError, StateError
from orchestrator.fsutil import atomic_write, fsync_dir, state_os_error
from orchestrator.systemd.argv import UNIT_NAME_HELP, is_unit_name
from orchestrator.transport.base import Transport

DROPIN_NAME = "50-vmrepair-gate.conf"
#: The command is written unquoted into a systemd command line: no whitespace, quotes, ``%``
#: specifiers or ``\`` escapes systemd would interpret.
_COMMAND_RE = re.compile(r"/[A-Za-z0-9._+/-]+")


def gated_unit(unit: str) -> str:
    """``unit`` validated for a gate (``nginx`` means ``nginx.service``).

    Raises:
        ConfigError: not a valid unit name, not a service, or a template without an instance.
    """
    name = unit if "." in unit.lstrip(".") else f"{unit}.service"
    # ``.service`` alone passes the generic check (it is a suffix without a name): not a unit here.
    if not is_unit_name(name) or name.startswith(("-", ".")):
        raise ConfigError(f"{unit!r} is not a unit name", remedy=f"unit names have {UNIT_NAME_HELP}")
    if not name.endswith(".service"):
        raise ConfigError(f"{name} is not a service: only services have ExecStartPre=",
                          remedy="gate the service the unit starts (e.g. nginx.service for a socket)")
    if name.endswith("@.service"):
        raise ConfigError(f"{name} is a template without an instance",
                          remedy=f"name an instance, e.g. {name.removesuffix('@.service')}@NAME.service")
    return name


def dropin_path(unit_dir: Path, unit: str) -> Path:
    return unit_dir / f"{unit}.d" / DROPIN_NAME


def render_dropin(unit: str, command: Path) -> str:
    """The drop-in's text.

    Raises:
        ConfigError: ``command`` cannot be written safely into a systemd command line.
    """
    if not _COMMAND_RE.fullmatch(str(command)):
        raise ConfigError(f"gate.command {str(command)!r} cannot be written into ExecStartPre=",
                          remedy="an absolute path of letters, digits and ._+-/ only")
    # systemd unescapes C-style escapes in command lines: a unit name's own ``\x2d`` must reach the
    # gate as written, so its backslash is doubled.
    argument = unit.replace("\\", "\\\\")
    return ("# Written by `vmrepair watch gate install`; remove with `vmrepair watch gate remove "
            f"{argument}`.\n# The start is refused when vmrepair's pre-start checks of the unit's "
            "component fail.\n"
            "# \"+\": the gate runs as root whatever the unit's User= is (it reads vmrepair's config and\n"
            "# state and runs the checks as root); the service itself keeps its own user.\n"
            f"[Service]\nExecStartPre=+{command} gate {argument}\n")


def install_gate(transport: Transport, unit: str, *, unit_dir: Path, command: Path) -> Path:
    """Write the drop-in for ``unit`` and reload systemd; returns its path.

    Raises:
        ConfigError: ``unit`` or ``command`` is not acceptable (:func:`gated_unit`, :func:`render_dropin`).
        StateError: the drop-in cannot be written.
        CommandFailedError, TransportError: ``systemctl daemon-reload`` failed.
    """
    name = gated_unit(unit)
    text = render_dropin(name, command)
    path = dropin_path(unit_dir, name)
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise state_os_error(f"cannot create {path.parent}", exc, directory=unit_dir) from exc
    # Unit files are world-readable (systemctl cat runs as any user); only root writes them.
    atomic_write(path, text.encode(), mode=0o644)
    systemd.daemon_reload(transport).raise_for_status(transport.host)
    return path


def remove_gate(transport: Transport, unit: str, *, unit_dir: Path) -> Path | None:
    """Remove the drop-in of ``unit`` (and its directory when it is then empty) and reload systemd;
    returns the removed path, None when there was none (nothing is reloaded then).

    Raises:
        ConfigError: ``unit`` is not acceptable.
        StateError: the drop-in cannot be removed.
        CommandFailedError, TransportError: ``systemctl daemon-reload`` failed.
    """
    path = dropin_path(unit_dir, gated_unit(unit))
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise state_os_error(f"cannot remove {path}", exc, directory=path.parent) from exc
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        raise StateError(f"cannot sync {path.parent}: {exc.strerror or exc}") from exc
    # Other drop-ins of the unit stay; only a directory we leave empty goes.
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    systemd.daemon_reload(transport).raise_for_status(transport.host)
    return path
