"""The kernel's messages of the current boot, read from the journal (``journalctl -k``).

Shared by the ``memory:oom`` and ``kernel:taint`` probes. Always argv, never a shell: filtering
(``grep``) happens here in Python on the lines read. The journal is read newest first
(``--reverse``), so when a chatty kernel fills :data:`OUTPUT_MAX`, the lines dropped are the oldest.
Lines are untrusted target text: callers escape and cap whatever they keep as evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.detect.common import command_output, run_command
from orchestrator.errors import CommandTimeoutError
from orchestrator.transport.base import Transport

JOURNALCTL = "journalctl"
TIMEOUT_S = 60.0
#: Journal output read per call; lines past it (the oldest) are counted as a cut, not read.
OUTPUT_MAX = 1024 * 1024
#: Characters of one journal line kept for matching; a kernel line is far shorter.
LINE_MAX = 2048
#: The timestamp ``-o short-iso`` starts a line with (``2024-05-14T10:22:31+0000`` or ``+00:00``).
_STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:?\d\d|Z)?)\s")
#: What ``journalctl --priority`` takes (syslog level names).
PRIORITIES = frozenset({"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"})


@dataclass(frozen=True)
class KernelLog:
    """Kernel journal lines, newest first, each cut at :data:`LINE_MAX` characters."""

    lines: tuple[str, ...]
    #: The output was cut at :data:`OUTPUT_MAX`: older lines were not read.
    is_truncated: bool = False


def journal_argv(*, since_minutes: int | None = None, priority: str | None = None) -> list[str]:
    """``journalctl -k --reverse -o short-iso --no-pager --quiet [--since=-Nmin] [--priority=P]``.

    Raises:
        ValueError: a window below one minute or an unknown priority (a caller bug).
    """
    argv = [JOURNALCTL, "-k", "--reverse", "--output=short-iso", "--no-pager", "--quiet"]
    if since_minutes is not None:
        if since_minutes < 1:
            raise ValueError(f"since_minutes must be at least 1, got {since_minutes}")
        argv.append(f"--since=-{since_minutes}min")
    if priority is not None:
        if priority not in PRIORITIES:
            raise ValueError(f"unknown journal priority {priority!r}")
        argv.append(f"--priority={priority}")
    return argv


def read_kernel_log(
    transport: Transport, *, since_minutes: int | None = None, priority: str | None = None,
) -> KernelLog | str:
    """The kernel's journal lines (current boot; ``-k`` implies ``-b``), or why they cannot be read.

    Raises:
        TransportError: the target cannot be reached (no journalctl, a timeout and a non-zero exit
            are reasons).
    """
    try:
        result = run_command(transport, journal_argv(since_minutes=since_minutes, priority=priority),
                             timeout=TIMEOUT_S, max_output=OUTPUT_MAX)
    except CommandTimeoutError:
        return f"journalctl did not finish within {TIMEOUT_S:g} s"
    if result is None:
        return "journalctl is not installed on the target"
    if not result.succeeded:
        return f"journalctl exited {result.exit_status}: {command_output(result, 512)}"
    lines = result.stdout_text.splitlines()
    if result.stdout_dropped and lines:
        lines.pop()  # cut mid-line
    return KernelLog(tuple(line[:LINE_MAX] for line in lines), bool(result.stdout_dropped))


def stamp(line: str) -> str:
    """The ISO timestamp a ``short-iso`` line starts with, or ``""``."""
    match = _STAMP_RE.match(line)
    return match.group(1) if match else ""
