"""Changing units: run a systemctl verb and keep how it ended as a :class:`UnitCommand` value.

Nothing here raises for a non-zero exit or a timeout: what a failed ``systemctl`` means is the
caller's decision (health retries, quarantine refuses, apply rolls back), and its output (untrusted,
capped) is evidence for the audit trail. Callers that must stop call
:meth:`UnitCommand.raise_for_status` or :meth:`UnitCommand.raise_for_timeout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.errors import CommandFailedError, CommandTimeoutError
from orchestrator.systemd.argv import JOB_VERBS, daemon_reload_argv, unit_argv
from orchestrator.systemd.counter import STARTING_VERBS, Run, own_the_start
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.output import command_output

#: systemctl waits for the start/stop job; a unit with a long TimeoutStartSec can take this long.
JOB_TIMEOUT_S = 120.0
#: enable/disable/reset-failed/daemon-reload only touch unit files and the manager's state.
QUICK_TIMEOUT_S = 60.0
#: Output kept from one systemctl call; only a capped part of it is stored in the result.
_OUTPUT_MAX = 64 * 1024


@dataclass(frozen=True)
class UnitCommand:
    """One systemctl call: what ran and how it ended (``exit_status`` None: it timed out)."""

    argv: tuple[str, ...]
    exit_status: int | None
    output: str = ""
    #: The transport's own timeout error, re-raised as-is by the raise_for_* methods.
    timeout_error: CommandTimeoutError | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    @property
    def timed_out(self) -> bool:
        return self.exit_status is None

    def describe(self) -> str:
        status = "timed out" if self.exit_status is None else f"exited {self.exit_status}"
        text = f"`{' '.join(self.argv)}` {status}"
        return f"{text}: {self.output.strip()}" if self.output.strip() and not self.succeeded else text

    def as_dict(self) -> dict[str, object]:
        return {"argv": list(self.argv), "exit_status": self.exit_status, "output": self.output}

    def raise_for_timeout(self, host: str) -> UnitCommand:
        """Return self unless the command timed out.

        Raises:
            CommandTimeoutError: it timed out (the transport's own error when there was one).
        """
        if self.exit_status is None:
            raise self.timeout_error or CommandTimeoutError(f"{host}: {self.describe()}", host=host,
                                                            argv=list(self.argv))
        return self

    def raise_for_status(self, host: str) -> UnitCommand:
        """Return self if the command exited 0.

        Raises:
            CommandTimeoutError: it timed out.
            CommandFailedError: it exited non-zero (message as :meth:`Transport.check` words it).
        """
        status = self.raise_for_timeout(host).exit_status
        if status is not None and status != 0:
            output = self.output.strip()[-2000:]
            raise CommandFailedError(f"{host}: command {list(self.argv)!r} exited {status}: {output}",
                                     host=host, exit_status=status, stderr=output)
        return self


def run_systemctl(transport: Transport, argv: list[str], *, timeout: float) -> UnitCommand:
    """Run a systemctl ``argv`` (from :mod:`orchestrator.systemd.argv`) as a :class:`UnitCommand`.

    Raises:
        TransportError: the target cannot be reached (a timeout is reported in the result instead).
    """
    try:
        result = transport.run(argv, timeout=timeout, max_output=_OUTPUT_MAX)
    except CommandTimeoutError as exc:
        return UnitCommand(tuple(argv), None, timeout_error=exc)
    return UnitCommand(tuple(argv), result.exit_status, command_output(result))


def unit_command(transport: Transport, verb: str, unit: str, *, timeout: float | None = None) -> UnitCommand:
    """``systemctl VERB -- UNIT``; ``timeout`` defaults to JOB_TIMEOUT_S for job verbs (start, stop,
    restart, reload ...) and QUICK_TIMEOUT_S for the others.

    Raises:
        TransportError: the target cannot be reached, or ``verb`` is unknown.
    """
    if timeout is None:
        timeout = JOB_TIMEOUT_S if verb in JOB_VERBS else QUICK_TIMEOUT_S
    return run_systemctl(transport, unit_argv(verb, unit), timeout=timeout)


def daemon_reload(transport: Transport, *, timeout: float = QUICK_TIMEOUT_S) -> UnitCommand:
    """``systemctl daemon-reload``, after unit files or drop-ins changed.

    Raises:
        TransportError: the target cannot be reached.
    """
    return run_systemctl(transport, daemon_reload_argv(), timeout=timeout)


def reset_failed_then(
    transport: Transport, verb: str, unit: str, *,
    timeout: float = JOB_TIMEOUT_S, reset_timeout: float = QUICK_TIMEOUT_S,
) -> UnitCommand:
    """``reset-failed`` then ``VERB``; the second command's outcome is the result.

    A unit stuck in a crash loop hits its start rate limit, and systemd refuses to start it again until
    the failed state is reset. The reset's own outcome is ignored: it exits non-zero for a unit that
    never failed, and if it hangs, the verb that follows shows whether the manager answers. After a
    start or restart that succeeded, ``NRestarts`` is made to count from it
    (:mod:`orchestrator.systemd.counter`).

    Raises:
        TransportError: the target cannot be reached, or ``verb`` is unknown.
    """
    unit_command(transport, "reset-failed", unit, timeout=reset_timeout)
    done = unit_command(transport, verb, unit, timeout=timeout)
    if done.succeeded and verb in STARTING_VERBS:
        own_the_start(quiet_runner(transport, reset_timeout), unit)
    return done


def quiet_runner(transport: Transport, timeout: float) -> Run:
    """A :data:`~orchestrator.systemd.counter.Run` over ``transport``: a timeout answers None.

    Raises (when called): TransportError: the target cannot be reached."""
    def run(argv: Sequence[str]) -> CommandResult | None:
        try:
            return transport.run(argv, timeout=timeout, max_output=_OUTPUT_MAX)
        except CommandTimeoutError:
            return None
    return run


def restart(
    transport: Transport, unit: str, *,
    timeout: float = JOB_TIMEOUT_S, reset_timeout: float = QUICK_TIMEOUT_S,
) -> UnitCommand:
    """``reset-failed`` then ``restart`` (see :func:`reset_failed_then`): the one way vmrepair
    restarts a unit.

    Raises:
        TransportError: the target cannot be reached.
    """
    return reset_failed_then(transport, "restart", unit, timeout=timeout, reset_timeout=reset_timeout)
