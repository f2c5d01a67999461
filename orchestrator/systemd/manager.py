"""The manager as a whole: ``systemctl is-system-running`` and the list of failed units.

Like :mod:`.query`, nothing here changes the host, and an answer that cannot be had (no systemctl,
PID 1 is not systemd, a hung manager) is a value with the reason, never an error. The answers are
target output: a state is kept only if it is one short word, a unit only if its name is one systemd
could have printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import CommandTimeoutError
from orchestrator.systemd.argv import is_system_running_argv, is_unit_name, list_failed_argv
from orchestrator.systemd.query import NO_SYSTEMD_MARKERS, SHOW_TIMEOUT_S, UNKNOWN, first_state_word
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.installed import run_if_installed
from orchestrator.transport.output import cap_output, command_output

#: Output read from ``list-units``; a host with thousands of failed units is reported by count.
MAX_LIST_OUTPUT = 256 * 1024
#: Unit names kept from one ``list-units`` answer (the rest are counted in ``more``).
MAX_FAILED_UNITS = 512
#: What ``list-units`` prints before a failed unit's name without ``--plain`` (UTF-8 and ASCII forms).
_BULLETS = frozenset({"\u25cf", "*", "\u00d7"})


@dataclass(frozen=True)
class SystemRunning:
    """What ``systemctl is-system-running`` said: the manager's state word (``running``,
    ``degraded``, ``maintenance`` ...), or why it could not be asked (``state`` is then
    :data:`~orchestrator.systemd.query.UNKNOWN` or ``offline``)."""

    state: str = UNKNOWN
    unavailable_reason: str | None = None


@dataclass(frozen=True)
class FailedUnits:
    """The units in the ``failed`` state, in systemd's order, or why they could not be listed.

    ``more`` counts valid names past :data:`MAX_FAILED_UNITS`; ``rejected`` counts lines whose first
    word is no unit name (garbled or hostile output), which are never kept.
    """

    units: tuple[str, ...] = ()
    more: int = 0
    rejected: int = 0
    #: systemctl printed more than :data:`MAX_LIST_OUTPUT`: the list is cut, ``more`` is a floor.
    is_truncated: bool = False
    unavailable_reason: str | None = None


def _unanswered(result: CommandResult | None) -> str | None:
    """Why ``result`` is no answer from systemd (None when it is one, whatever its exit status)."""
    if result is None:
        return "systemctl is not installed on the target"
    if any(marker in result.stderr for marker in NO_SYSTEMD_MARKERS):
        return "the target does not run systemd as PID 1"
    return None


def system_running(transport: Transport, *, timeout: float = SHOW_TIMEOUT_S) -> SystemRunning:
    """Ask ``systemctl is-system-running`` (it exits non-zero for every state but ``running``, so
    the exit status says nothing more than the word).

    Raises:
        TransportError: the target cannot be reached (a missing systemctl or systemd, a timeout and
            an answer without a state word are reasons in the answer).
    """
    try:
        result = run_if_installed(transport, is_system_running_argv(), timeout=timeout, max_output=4096)
    except CommandTimeoutError:
        return SystemRunning(unavailable_reason=f"systemctl is-system-running did not answer within "
                                                f"{timeout:g} s")
    reason = _unanswered(result)
    if reason is not None or result is None:
        return SystemRunning(unavailable_reason=reason)
    state = first_state_word(result.stdout_text)
    if state == "offline":
        # systemctl says so inside a chroot, or when told the system is offline: nothing runs.
        return SystemRunning(state, "systemctl is-system-running answered offline: no running "
                                    "systemd manager to ask")
    if state == UNKNOWN:
        return SystemRunning(state, f"systemctl is-system-running gave no state (exit "
                                    f"{result.exit_status}): {command_output(result, 512)}")
    return SystemRunning(state)


def parse_failed_units(text: str) -> FailedUnits:
    """The unit names of ``list-units --plain --no-legend`` output: the first word of each line (after
    a bullet, should one be printed), kept only if it is a unit name with a type suffix. Never
    raises."""
    units: list[str] = []
    more = rejected = 0
    for line in text[:MAX_LIST_OUTPUT].splitlines():
        words = line.split()
        if words and words[0] in _BULLETS:
            words = words[1:]
        if not words:
            continue
        name = words[0]
        if not (is_unit_name(name) and "." in name.strip(".")):
            rejected += 1
        elif len(units) < MAX_FAILED_UNITS:
            units.append(name)
        else:
            more += 1
    return FailedUnits(tuple(units), more, rejected)


def failed_units(transport: Transport, *, timeout: float = SHOW_TIMEOUT_S) -> FailedUnits:
    """List the units systemd holds in the ``failed`` state.

    Raises:
        TransportError: the target cannot be reached (a missing systemctl or systemd, a timeout and
            a non-zero exit are reasons in the answer).
    """
    try:
        result = run_if_installed(transport, list_failed_argv(), timeout=timeout,
                                  max_output=MAX_LIST_OUTPUT)
    except CommandTimeoutError:
        return FailedUnits(unavailable_reason=f"systemctl list-units did not answer within {timeout:g} s")
    reason = _unanswered(result)
    if reason is not None or result is None:
        return FailedUnits(unavailable_reason=reason)
    if not result.succeeded:
        return FailedUnits(unavailable_reason=f"systemctl list-units exited {result.exit_status}: "
                                              f"{cap_output(result.stderr, 512)}")
    if not result.stdout_dropped:
        return parse_failed_units(result.stdout_text)
    # Cut mid-line: the last line may hold half a name that still looks like one.
    kept, _, _ = result.stdout_text.rpartition("\n")
    parsed = parse_failed_units(kept)
    return FailedUnits(parsed.units, parsed.more, parsed.rejected, is_truncated=True)
