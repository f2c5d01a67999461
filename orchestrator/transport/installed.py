"""Running a program that may not be installed on the target, and telling that apart from a failure."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import TransportError
from orchestrator.transport.base import CommandResult, Transport

#: What a POSIX shell answers for a program it cannot find: SSH targets report a missing binary so.
EXIT_NOT_FOUND = 127
#: Output kept from such a command; callers keep only a capped part of it as evidence.
INSTALLED_OUTPUT_MAX = 64 * 1024


def run_if_installed(
    transport: Transport, argv: Sequence[str], *, timeout: float, max_output: int = INSTALLED_OUTPUT_MAX
) -> CommandResult | None:
    """Run ``argv``; ``None`` when its program does not exist on the target.

    A missing program shows up as exit status 127 over SSH (the remote shell) and as a
    TransportError caused by FileNotFoundError on the local transport.

    Raises:
        CommandTimeoutError: the command ran past ``timeout`` (the caller decides what that means).
        TransportError: the target cannot be reached or the session broke.
    """
    try:
        result = transport.run(argv, timeout=timeout, max_output=max_output)
    except TransportError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise
    return None if result.exit_status == EXIT_NOT_FOUND else result
