"""Run one command as a transient service of the target's systemd (``systemd-run``), not as a child of
the caller.

Why: the daemon runs under its own unit's sandbox (``ProtectSystem=yes``: ``/usr`` and ``/boot``
read-only). The one remediation that must write there, reinstalling a vital component's packages at
start, is started by PID 1 in a unit of its own, outside that sandbox, named ``vmrepair-<purpose>-…``
in the journal. The daemon keeps its read-only ``/usr`` for everything else; what escapes it is
exactly the argv given here, and each such run is audited by the caller.

``--wait --pipe`` make ``systemd-run`` return the command's exit status and pass its output back;
``--collect`` unloads the unit even when it failed, so nothing is left behind; ``RuntimeMaxSec``
lets systemd kill a command that outlives the caller's deadline. On a target without systemd as
PID 1 (a container) the command runs directly, as it would have without this module.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Sequence

from orchestrator.errors import TransportError
from orchestrator.transport.base import CommandResult, Transport

SYSTEMD_RUN = "systemd-run"
#: sd_booted(3): this directory exists exactly when systemd is PID 1.
BOOTED_MARK = "/run/systemd/system"
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_counter = itertools.count(1)


def transient_unit_name(purpose: str) -> str:
    """``vmrepair-PURPOSE-<time>-<pid>-<n>.service``: unique on the target for this process.

    Raises:
        TransportError: ``purpose`` is not a short lowercase word (it becomes part of a unit name).
    """
    if not _PURPOSE_RE.fullmatch(purpose):
        raise TransportError(f"bad transient unit purpose {purpose!r}")
    return f"vmrepair-{purpose}-{int(time.time())}-{os.getpid()}-{next(_counter)}.service"


def transient_argv(unit: str, argv: Sequence[str], *, runtime_max_s: float) -> list[str]:
    """``systemd-run`` argv running ``argv`` as the transient service ``unit`` and waiting for it."""
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise TransportError(f"bad command for a transient unit: {list(argv)!r}")
    return [SYSTEMD_RUN, f"--unit={unit}", "--quiet", "--wait", "--pipe", "--collect",
            "--service-type=exec", f"--property=RuntimeMaxSec={max(1, int(runtime_max_s))}",
            # Output goes back through the pipe; the journal gets systemd's start/stop lines only.
            "--", *argv]


def run_outside_sandbox(transport: Transport, purpose: str, argv: Sequence[str], *, timeout: float,
                        max_output: int) -> CommandResult:
    """Run ``argv`` as a transient service of the target's systemd (see the module docstring), or
    directly when systemd is not PID 1 there. The result is the command's own (exit status, output).

    Raises:
        CommandTimeoutError: it did not finish within ``timeout``.
        TransportError: the target cannot be reached.
    """
    booted = transport.run(["test", "-d", BOOTED_MARK], timeout=30)
    if not booted.succeeded:
        return transport.run(list(argv), timeout=timeout, max_output=max_output)
    # systemd kills it a little before our own deadline, so the unit never outlives the caller.
    wrapped = transient_argv(transient_unit_name(purpose), argv, runtime_max_s=max(1.0, timeout - 5))
    return transport.run(wrapped, timeout=timeout, max_output=max_output)
