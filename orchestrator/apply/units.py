"""systemctl on the target: unit actions of a package, and putting units back as they were.

Every command is an argv list; unit names and actions were validated when the package was built
(:class:`~orchestrator.fixpkg.ops.UnitOp`), so nothing here can smuggle an option or a shell word.
"""

from __future__ import annotations

import re

from orchestrator.errors import VmRepairError
from orchestrator.transport.base import Transport

#: States in which a unit was doing its job before apply; after a rollback it must run again.
RUNNING_STATES = frozenset({"active", "activating", "reloading", "refreshing"})
_STATE_RE = re.compile(r"^[a-z-]{1,32}$")


def daemon_reload(transport: Transport, *, timeout: float) -> None:
    """Raises: CommandFailedError, TransportError."""
    transport.check(["systemctl", "daemon-reload"], timeout=timeout)


def unit_action(transport: Transport, unit: str, action: str, *, timeout: float) -> None:
    """``reset-failed`` then ``action``: a unit stuck in a crash loop hits its start rate limit, and
    systemd refuses to start it again until the failed state is reset.

    Raises:
        CommandFailedError: the action exited non-zero. TransportError: the command could not run.
    """
    # Its exit status is ignored: it is non-zero for a unit that never failed, which is no problem.
    transport.run(["systemctl", "reset-failed", unit], timeout=timeout)
    transport.check(["systemctl", action, unit], timeout=timeout)


def unit_state(transport: Transport, unit: str, *, timeout: float) -> str:
    """The unit's ActiveState as ``systemctl is-active`` prints it (``active``, ``failed`` ...).

    Raises:
        TransportError: the command could not run (a non-zero exit is normal for inactive units).
    """
    result = transport.run(["systemctl", "is-active", unit], timeout=timeout)
    words = result.stdout_text.split()
    state = words[0] if words else ""
    return state if _STATE_RE.match(state) else "unknown"


def restore_unit(transport: Transport, unit: str, prior_state: str, *, timeout: float) -> str | None:
    """Bring ``unit`` back to how it was before apply; return an error message, or ``None``.

    Running before -> restarted (must succeed: it runs the restored config). Failed before -> restarted
    too, so it runs the restored files rather than the package's, but failing again is the state it was
    in, not a rollback error. Anything else -> stopped.
    """
    try:
        if prior_state in RUNNING_STATES:
            unit_action(transport, unit, "restart", timeout=timeout)
        elif prior_state == "failed":
            transport.run(["systemctl", "reset-failed", unit], timeout=timeout)
            transport.run(["systemctl", "restart", unit], timeout=timeout)
        else:
            transport.check(["systemctl", "stop", unit], timeout=timeout)
    except VmRepairError as exc:
        return f"restore unit {unit} (was {prior_state}): {exc.message}"
    return None
