"""systemctl on the target: unit actions of a package, and putting units back as they were.

Every argv comes from :mod:`orchestrator.systemd`; unit names and actions were also validated when
the package was built (:class:`~orchestrator.fixpkg.ops.UnitOp`), so nothing here can smuggle an
option or a shell word.
"""

from __future__ import annotations

from orchestrator import systemd
from orchestrator.errors import VmRepairError
from orchestrator.transport.base import Transport

#: States in which a unit was doing its job before apply; after a rollback it must run again.
RUNNING_STATES = frozenset({"active", "activating", "reloading", "refreshing"})


def daemon_reload(transport: Transport, *, timeout: float) -> None:
    """Raises: CommandFailedError, TransportError."""
    systemd.daemon_reload(transport, timeout=timeout).raise_for_status(transport.host)


def unit_action(transport: Transport, unit: str, action: str, *, timeout: float) -> None:
    """``reset-failed`` then ``action``: a unit stuck in a crash loop hits its start rate limit, and
    systemd refuses to start it again until the failed state is reset.

    Raises:
        CommandFailedError: the action exited non-zero. CommandTimeoutError: it hung.
        TransportError: the command could not run.
    """
    systemd.reset_failed_then(transport, action, unit, timeout=timeout,
                              reset_timeout=timeout).raise_for_status(transport.host)


def unit_state(transport: Transport, unit: str, *, timeout: float) -> str:
    """The unit's ActiveState as ``systemctl is-active`` prints it (``active``, ``failed`` ...).

    Raises:
        TransportError: the command could not run (a non-zero exit is normal for inactive units).
    """
    return systemd.active_state(transport, unit, timeout=timeout)


def restore_unit(transport: Transport, unit: str, prior_state: str, *, timeout: float) -> str | None:
    """Bring ``unit`` back to how it was before apply; return an error message, or ``None``.

    Running before -> restarted (must succeed: it runs the restored config). Failed before -> restarted
    too, so it runs the restored files rather than the package's, but failing again is the state it was
    in, not a rollback error (a hung restart still is). Anything else -> stopped.
    """
    try:
        if prior_state in RUNNING_STATES:
            unit_action(transport, unit, "restart", timeout=timeout)
        elif prior_state == "failed":
            systemd.restart(transport, unit, timeout=timeout,
                            reset_timeout=timeout).raise_for_timeout(transport.host)
        else:
            transport.check(systemd.unit_argv("stop", unit), timeout=timeout)
    except VmRepairError as exc:
        return f"restore unit {unit} (was {prior_state}): {exc.message}"
    return None
