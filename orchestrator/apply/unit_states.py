"""Unit-file states of a package (``unit_state``: enable, disable, mask, unmask) on the target, and
putting back exactly the ``systemctl is-enabled`` answer the backup recorded.

Rollback, from the recorded state (whatever the package did):

- ``masked``   → ``mask`` unless still masked;
- ``enabled``  → ``unmask`` if masked, then ``enable`` unless enabled;
- ``disabled`` → ``unmask`` if masked, then ``disable`` if enabled;
- anything else (``static``, ``indirect``, or the ``unknown`` of a unit that did not exist yet, whose
  file the package wrote) → ``unmask`` if masked, then ``disable`` if the package left it enabled:
  those states are not set by a verb, only left by undoing what the package did.

Rollback runs these *before* the files are restored (the reverse of apply, where states come after the
files): ``disable`` needs the unit file that the file restore may remove. The answer is verified once
the whole restore is done; a state that did not come back is a rollback error, never assumed.
"""

from __future__ import annotations

from orchestrator import systemd
from orchestrator.errors import ApplyError, VmRepairError
from orchestrator.fixpkg.ops import PATH_OPS, Operation, UnitStateOp
from orchestrator.fixpkg.paths import is_unit_file
from orchestrator.transport.base import Transport


def unit_file_state(transport: Transport, unit: str, *, timeout: float) -> str:
    """Raises: TransportError."""
    return systemd.unit_file_state(transport, unit, timeout=timeout)


def is_checked_at_preflight(op: UnitStateOp, ops: tuple[Operation, ...]) -> bool:
    """False when the package also writes the unit's own file or drop-ins: the state the repair saw
    was after that write, so it can only be checked when the operation runs."""
    return not any(
        isinstance(other, PATH_OPS) and is_unit_file(other.path)
        and (other.path.rsplit("/", 1)[-1] == op.unit or f"/{op.unit}.d/" in other.path + "/")
        for other in ops
    )


def _precondition_error(op: UnitStateOp, state: str) -> ApplyError:
    return ApplyError(
        f"target changed since capture: unit {op.unit} is {state}, expected {op.expect}",
        remedy="run the repair again so the fix is rebuilt from the target's current state",
    )


def check_unit_state(op: UnitStateOp, transport: Transport, *, timeout: float) -> None:
    """Raises: ApplyError (precondition), TransportError."""
    if (state := unit_file_state(transport, op.unit, timeout=timeout)) != op.expect:
        raise _precondition_error(op, state)


def set_unit_state(op: UnitStateOp, transport: Transport, *, timeout: float) -> None:
    """Check the precondition again, then ``systemctl VERB UNIT`` (it reloads the manager itself).

    Raises:
        ApplyError: the unit is no longer in the expected state. CommandFailedError, TransportError.
    """
    check_unit_state(op, transport, timeout=timeout)
    systemd.unit_command(transport, op.verb, op.unit, timeout=timeout).raise_for_status(transport.host)


def restore_unit_state(transport: Transport, unit: str, prior: str, *, timeout: float) -> str | None:
    """Undo a package's state change of ``unit`` (see the module docstring); return an error or None.
    Idempotent: acts only where the current answer differs, so a restore may run again after a crash."""
    def run(verb: str) -> None:
        systemd.unit_command(transport, verb, unit, timeout=timeout).raise_for_status(transport.host)

    try:
        now = unit_file_state(transport, unit, timeout=timeout)
        if prior == "masked":
            if now != "masked":
                run("mask")
            return None
        if now == "masked":
            run("unmask")
            now = unit_file_state(transport, unit, timeout=timeout)
        if prior == "enabled" and now != "enabled":
            run("enable")
        elif prior != "enabled" and now == "enabled":
            run("disable")
    except VmRepairError as exc:
        return f"restore unit state {unit} (was {prior}): {exc.message}"
    return None


def verify_unit_state(transport: Transport, unit: str, prior: str, *, timeout: float) -> str | None:
    """An error when ``systemctl is-enabled`` does not print ``prior`` again, else None."""
    try:
        now = unit_file_state(transport, unit, timeout=timeout)
    except VmRepairError as exc:
        return f"cannot verify the state of unit {unit}: {exc.message}"
    return None if now == prior else f"unit {unit} is {now} after restore, was {prior}"
