"""Moderate load inside the guest while the stability layer watches the repaired component.

stress-ng runs as a transient systemd unit (``systemd-run``) rather than as a child of our SSH
command: it then survives the SSH channel (our commands are short, one per check), has a name we can
ask about (``systemctl is-active``) and stop (``systemctl stop``), and systemd reaps it. ``--collect``
unloads the unit even if it fails, so a crashed run leaves nothing behind; stress-ng's own
``--timeout`` stops it even if we never get to call :meth:`GuestLoad.stop` (a lost connection).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

from orchestrator.errors import CommandFailedError
from orchestrator.session.store import cap_text
from orchestrator.systemd import is_active_argv, no_block_argv
from orchestrator.transport.base import Transport

#: stress-ng outlives the period by this much, so it never ends before the last round has started.
LOAD_MARGIN_S = 5
#: One CPU hog, one I/O (sync) hog, one 64 MiB memory hog: noticeable on a 2-vCPU/1 GiB guest,
#: not enough to get the OOM killer involved.
#: Moderate load: one vCPU half busy plus memory churn. Measured under TCG on a 2-vCPU guest, adding
#: `--io 1` (a sync() loop) stretched a 3-probe round past 10 s: that tests the emulator, not the fix.
STRESS_ARGS = ("--cpu", "1", "--cpu-load", "50", "--vm", "1", "--vm-bytes", "32M")
_TIMEOUT_S = 30.0
#: ``systemctl stop`` of a unit that is not loaded (already finished and collected).
_EXIT_UNIT_NOT_LOADED = 5


def random_token() -> str:
    return secrets.token_hex(4)


class GuestLoad:
    """A stress-ng run in the guest, named ``vmrepair-load-<random>``.

    Raises (from every method): TransportError subclasses when the guest cannot be reached;
    CommandFailedError when systemd-run or systemctl refuse (no systemd, no stress-ng in the image).
    """

    def __init__(self, transport: Transport, *, duration_s: float,
                 token: Callable[[], str] = random_token) -> None:
        self._transport = transport
        self.unit = f"vmrepair-load-{token()}"
        self.timeout_s = math.ceil(max(0.0, duration_s)) + LOAD_MARGIN_S

    @property
    def argv(self) -> list[str]:
        # Type=exec: systemd-run returns only once stress-ng was exec'd, so a missing binary fails
        # here instead of as a unit that dies a moment later while we believe the load is on.
        return ["systemd-run", "--unit", self.unit, "--collect", "--quiet", "--property=Type=exec",
                "stress-ng", *STRESS_ARGS, "--timeout", f"{self.timeout_s}s", "--quiet"]

    def start(self) -> None:
        self._transport.check(self.argv, timeout=_TIMEOUT_S)

    def is_running(self) -> bool:
        result = self._transport.run(is_active_argv(self.unit, quiet=True), timeout=_TIMEOUT_S)
        return result.succeeded

    def stop(self) -> str:
        """Stop the unit; returns what happened (``stop queued`` or ``already finished``).

        The stop is queued (``--no-block``), not waited for: stress-ng's workers take most of a second
        to exit under TCG, on the critical path of every validation, and nothing after the period needs
        them gone (a failed attempt reverts the VM; a validated one only reads it, and its stress-ng
        also ends at its own ``--timeout``)."""
        result = self._transport.run(no_block_argv("stop", self.unit), timeout=_TIMEOUT_S)
        if result.succeeded:
            return "stop queued"
        if result.exit_status == _EXIT_UNIT_NOT_LOADED:
            return "already finished"
        stderr = cap_text(result.stderr_text.strip(), 500)
        raise CommandFailedError(
            f"{self._transport.host}: systemctl stop {self.unit} exited {result.exit_status}: {stderr}",
            host=self._transport.host, exit_status=result.exit_status, stderr=stderr)
