"""Reading units and the manager: ``systemctl show``, ``is-active`` and ``is-system-running``.

Like testinfra's ``Service`` module, these answer questions about a host and change nothing. An
answer that cannot be had (no systemctl, PID 1 is not systemd, a hung manager) is a value with the
reason, not an error: probes report such a check as unavailable rather than failed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import CommandTimeoutError, TransportError
from orchestrator.systemd.argv import is_active_argv, is_enabled_argv, is_system_running_argv, show_argv
from orchestrator.systemd.show import MAX_VALUE, UnitInfo, parse_show
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed
from orchestrator.transport.output import cap_output

SHOW_TIMEOUT_S = 30.0
#: What systemctl prints when PID 1 is not systemd, or when its bus is not there.
NO_SYSTEMD_MARKERS = (b"System has not been booted with systemd", b"Failed to connect to bus")
#: What :func:`active_state` and :func:`system_state` answer when the target's answer is no state word.
UNKNOWN = "unknown"
_STATE_RE = re.compile(r"^[a-z-]{1,32}$")


@dataclass(frozen=True)
class ShowAnswer:
    """``systemctl show`` of some units: one :class:`UnitInfo` per unit asked, in the order asked,
    or why systemd could not be asked (``units`` is then empty)."""

    units: tuple[UnitInfo, ...] = ()
    unavailable_reason: str | None = None


def show(
    transport: Transport, units: Sequence[str], properties: Sequence[str], *,
    timeout: float = SHOW_TIMEOUT_S, max_value: int = MAX_VALUE,
) -> ShowAnswer:
    """Ask systemd for ``properties`` of ``units`` in one call.

    ``units`` holds at most as many entries as were asked (fewer only if systemctl printed fewer
    blocks); match them by position, or by ``UnitInfo.id`` when ``Id`` was asked for.

    Raises:
        TransportError: the target cannot be reached, or ``units``/``properties`` are malformed (a
            missing systemctl or systemd, a timeout and a non-zero exit are reasons in the answer).
    """
    if isinstance(units, str):
        raise TransportError(f"show() needs a list of units, got the string {units!r}")
    argv = show_argv(*units, properties=properties)
    try:
        result = run_if_installed(transport, argv, timeout=timeout)
    except CommandTimeoutError:
        return ShowAnswer(unavailable_reason=f"systemctl show did not answer within {timeout:g} s")
    if result is None:
        return ShowAnswer(unavailable_reason="systemctl is not installed on the target")
    if not result.succeeded:
        if any(marker in result.stderr for marker in NO_SYSTEMD_MARKERS):
            return ShowAnswer(unavailable_reason="the target does not run systemd as PID 1")
        return ShowAnswer(unavailable_reason=f"systemctl show exited {result.exit_status}: "
                          f"{cap_output(result.stderr, 512)}")
    infos = parse_show(result.stdout_text, properties, max_value=max_value)
    return ShowAnswer(infos[:len(units)])


def active_state(transport: Transport, unit: str, *, timeout: float) -> str:
    """The unit's ActiveState as ``systemctl is-active`` prints it (``active``, ``failed`` ...), or
    :data:`UNKNOWN` when the answer is not a state word.

    Raises:
        TransportError: the command could not run or timed out (a non-zero exit is normal for
            inactive units).
    """
    result = transport.run(is_active_argv(unit), timeout=timeout)
    return first_state_word(result.stdout_text)


def unit_file_state(transport: Transport, unit: str, *, timeout: float) -> str:
    """What ``systemctl is-enabled`` prints for the unit (``enabled``, ``masked``, ``static`` ...), or
    :data:`UNKNOWN` when the answer is not a state word.

    Raises:
        TransportError: the command could not run or timed out (a non-zero exit is normal: only the
            enabled states exit 0).
    """
    result = transport.run(is_enabled_argv(unit), timeout=timeout)
    return first_state_word(result.stdout_text)


def system_state(transport: Transport, *, timeout: float = 30.0) -> str:
    """What ``systemctl is-system-running`` answers (``running``, ``degraded``, ``emergency`` ...), or
    :data:`UNKNOWN` when it cannot be asked. Never raises: a host that does not answer is in an
    unknown state, which is what callers report."""
    try:
        result = transport.run(is_system_running_argv(), timeout=timeout)
    except TransportError:
        return UNKNOWN
    return first_state_word(result.stdout_text)


def first_state_word(text: str) -> str:
    """The first word of ``text`` if it looks like a systemd state (``active``, ``degraded``), else
    :data:`UNKNOWN`."""
    # Target output: keep one short state word, nothing that could carry an escape sequence.
    words = text.split()
    state = words[0] if words else ""
    return state if _STATE_RE.match(state) else UNKNOWN
