"""The argv of every ``systemctl`` command vmrepair runs. Nothing here runs anything.

Unit names come from config files, fix packages and the target's own answers: every builder puts
``--`` before them, so a name like ``-H.service`` can never be read as an option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from orchestrator.errors import TransportError

SYSTEMCTL = "systemctl"
#: Verbs that start or stop a job: systemctl waits for it (see ``JOB_TIMEOUT_S`` in control.py).
JOB_VERBS = frozenset({"start", "stop", "restart", "reload", "try-restart", "reload-or-restart"})
#: Every verb :func:`unit_argv` builds. enable/disable/mask/unmask only touch unit file symlinks;
#: reset-failed only clears the failed state and the start rate limit.
UNIT_VERBS = JOB_VERBS | {"reset-failed", "enable", "disable", "mask", "unmask"}
#: A unit name as systemd allows them (letters, digits, ``:_.@-`` and ``\`` escapes, at most 255), never
#: starting with ``-`` (an option to every tool that gets it without ``--``) except the root units.
_UNIT_NAME_RE = re.compile(r"^(?:-\.(?:mount|slice)|[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,254})$")
UNIT_NAME_HELP = "letters, digits and :_.@-\\, not starting with '-', at most 255 characters"
#: A property name as systemd spells them (``ActiveState``, ``NRestarts``); anything else is a typo.
_PROPERTY_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_SIGNAL_RE = re.compile(r"^SIG[A-Z0-9]{2,8}$")


def unit_argv(verb: str, unit: str) -> list[str]:
    """``systemctl VERB -- UNIT``; ``verb`` is one of :data:`UNIT_VERBS`.

    Raises:
        TransportError: unknown verb or empty unit name (a caller bug, never a host problem).
    """
    if verb not in UNIT_VERBS:
        raise TransportError(f"unknown systemctl verb {verb!r} (known: {', '.join(sorted(UNIT_VERBS))})")
    return [SYSTEMCTL, verb, "--", _unit(unit)]


def no_block_argv(verb: str, unit: str) -> list[str]:
    """``systemctl --no-block VERB -- UNIT``: queue the job and return at once; the caller watches the
    unit (see :mod:`orchestrator.systemd.bounded`) instead of waiting on a job that may never end.

    Raises:
        TransportError: ``verb`` is not a job verb, or empty unit name.
    """
    if verb not in JOB_VERBS:
        raise TransportError(f"--no-block needs a job verb, not {verb!r}")
    return [SYSTEMCTL, "--no-block", verb, "--", _unit(unit)]


def kill_argv(unit: str, *, signal: str = "SIGKILL") -> list[str]:
    """``systemctl kill --signal=SIG -- UNIT``: signal every process of the unit's cgroup through systemd
    (a stop stuck in ``stop-sigterm`` waits on one of them).

    Raises:
        TransportError: ``signal`` is not a signal name, or empty unit name.
    """
    if not _SIGNAL_RE.match(signal):
        raise TransportError(f"malformed signal name {signal!r}")
    return [SYSTEMCTL, "kill", f"--signal={signal}", "--", _unit(unit)]


def is_active_argv(unit: str, *, quiet: bool = False) -> list[str]:
    """``systemctl is-active [--quiet] -- UNIT``: exit 0 only when the unit is active.

    Raises:
        TransportError: empty unit name.
    """
    return [SYSTEMCTL, "is-active", *(["--quiet"] if quiet else []), "--", _unit(unit)]


def is_enabled_argv(unit: str) -> list[str]:
    """``systemctl is-enabled -- UNIT``: prints the unit-file state (``enabled``, ``disabled``,
    ``masked``, ``static`` ...); exits non-zero for every state but the enabled ones.

    Raises:
        TransportError: empty unit name.
    """
    return [SYSTEMCTL, "is-enabled", "--", _unit(unit)]


def show_argv(*units: str, properties: Sequence[str]) -> list[str]:
    """``systemctl show --property=A,B -- UNIT...``: one block of ``KEY=VALUE`` lines per unit, in the
    order asked, separated by blank lines (parse it with :func:`orchestrator.systemd.show.parse_show`).

    Raises:
        TransportError: no unit, an empty unit name, or no or a malformed property name.
    """
    if not units:
        raise TransportError("systemctl show needs at least one unit")
    # A bare str is a Sequence[str] too: "ActiveState" would ask for A, c, t, ...
    if isinstance(properties, str) or not properties:
        raise TransportError(f"systemctl show needs a list of property names, got {properties!r}")
    bad = [p for p in properties if not _PROPERTY_RE.match(p)]
    if bad:
        raise TransportError(f"malformed systemd property name {bad[0]!r}")
    return [SYSTEMCTL, "show", f"--property={','.join(properties)}", "--", *map(_unit, units)]


def daemon_reload_argv() -> list[str]:
    """``systemctl daemon-reload``: reread unit files and drop-ins after they changed."""
    return [SYSTEMCTL, "daemon-reload"]


def is_system_running_argv(*, wait: bool = False) -> list[str]:
    """``systemctl is-system-running [--wait]``; with ``--wait`` it returns only once boot finished."""
    return [SYSTEMCTL, "is-system-running", *(["--wait"] if wait else [])]


def list_failed_argv() -> list[str]:
    """``systemctl list-units --state=failed --plain --no-legend --no-pager --full``: one line per failed
    unit, ``UNIT LOAD ACTIVE SUB DESCRIPTION``; ``--full`` so no unit name is ever cut short."""
    return [SYSTEMCTL, "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager", "--full"]


def reboot_argv() -> list[str]:
    """``systemctl --no-block reboot``: queue the reboot and return, so the command itself can answer
    before the connection it came over goes down."""
    return [SYSTEMCTL, "--no-block", "reboot"]


def is_unit_name(name: str) -> bool:
    """Whether ``name`` is a unit name (``nginx.service``, ``nginx``, ``getty@tty1.service``, ``-.mount``)
    that no tool can take for an option."""
    return bool(_UNIT_NAME_RE.fullmatch(name))


def _unit(unit: str) -> str:
    if not isinstance(unit, str) or not unit.strip():
        raise TransportError(f"bad systemd unit name {unit!r}")
    return unit
