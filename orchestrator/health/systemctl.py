"""systemd unit control on a target through its transport (argv only, never a shell).

Shared by the health monitor (restart), quarantine (stop, disable, enable, start) and boot diagnostics
(restart after a remediation). Every call returns a :class:`UnitCommand` instead of raising on a
non-zero exit: what a failed ``systemctl`` means is the caller's decision, and its output (untrusted,
capped) is evidence for the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.detect.common import command_output
from orchestrator.errors import CommandTimeoutError
from orchestrator.transport.base import Transport

#: systemctl waits for the start/stop job; a unit with a long TimeoutStartSec can take this long.
JOB_TIMEOUT_S = 120.0
#: enable/disable/daemon-reload only touch unit files and the manager's state.
QUICK_TIMEOUT_S = 60.0
_JOB_VERBS = frozenset({"start", "stop", "restart"})


@dataclass(frozen=True)
class UnitCommand:
    """One systemctl call: what ran and how it ended (``exit_status`` None: it timed out)."""

    argv: tuple[str, ...]
    exit_status: int | None
    output: str = ""

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    def describe(self) -> str:
        status = "timed out" if self.exit_status is None else f"exited {self.exit_status}"
        text = f"`{' '.join(self.argv)}` {status}"
        return f"{text}: {self.output.strip()}" if self.output.strip() and not self.succeeded else text

    def as_dict(self) -> dict[str, object]:
        return {"argv": list(self.argv), "exit_status": self.exit_status, "output": self.output}


def systemctl(transport: Transport, verb: str, unit: str | None = None) -> UnitCommand:
    """Run ``systemctl VERB [-- UNIT]`` on the target.

    Raises:
        TransportError: the target cannot be reached (a timeout is reported in the result instead).
    """
    # "--" so a unit name from config.yaml can never be read as an option.
    argv = ["systemctl", verb] if unit is None else ["systemctl", verb, "--", unit]
    timeout = JOB_TIMEOUT_S if verb in _JOB_VERBS else QUICK_TIMEOUT_S
    try:
        result = transport.run(argv, timeout=timeout, max_output=64 * 1024)
    except CommandTimeoutError:
        return UnitCommand(tuple(argv), None)
    return UnitCommand(tuple(argv), result.exit_status, command_output(result))


def restart_unit(transport: Transport, unit: str) -> UnitCommand:
    """``reset-failed`` (so systemd's start rate limit does not refuse us) then ``restart``; the
    restart's outcome is the result.

    Raises:
        TransportError: the target cannot be reached.
    """
    systemctl(transport, "reset-failed", unit)
    return systemctl(transport, "restart", unit)
