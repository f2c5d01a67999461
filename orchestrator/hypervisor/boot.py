"""Wait for a booting guest to answer SSH, failing fast when it cannot.

The serial console log is untrusted guest output: it is only searched for a few fixed markers and never
interpreted further.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import BootError, ConnectError
from orchestrator.hypervisor.connection import DomainHandle
from orchestrator.retry import Sleep, ssh_ready_policy
from orchestrator.transport.base import Transport

#: Markers after which the guest will never reach SSH; waiting for the deadline would only waste time.
FATAL_MARKERS = (
    b"Kernel panic - not syncing",
    b"You are in emergency mode",
    b"Give root password for maintenance",
)
TAIL_BYTES = 64 * 1024


def serial_tail(path: Path, limit: int = TAIL_BYTES) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read()
    except OSError:
        return b""


def wait_for_ssh(
    dom: DomainHandle,
    connect: Callable[[], Transport],
    *,
    serial_log: Path,
    deadline_s: float,
    sleep: Sleep = time.sleep,
) -> float:
    """Return seconds until ``true`` ran over SSH.

    Raises:
        BootError: the deadline passed, the domain stopped, or the console shows a fatal marker;
            the message names the serial log.
    """
    began = time.monotonic()

    def attempt() -> None:
        if not dom.is_active():
            raise BootError(
                f"{dom.name} stopped while booting (state: {dom.state_name()})",
                domain=dom.name, serial_log=str(serial_log),
            )
        tail = serial_tail(serial_log)
        for marker in FATAL_MARKERS:
            if marker in tail:
                raise BootError(
                    f"{dom.name} cannot boot: console shows {marker.decode()!r}",
                    domain=dom.name, serial_log=str(serial_log),
                )
        with connect() as transport:
            result = transport.run(["true"], timeout=10)
        if not result.succeeded:
            raise ConnectError(f"`true` exited {result.exit_status} over SSH")

    try:
        ssh_ready_policy(deadline_s, sleep=sleep)(attempt)
    except ConnectError as exc:
        raise BootError(
            f"{dom.name} did not answer SSH within {deadline_s:.0f} s (last error: {exc})",
            domain=dom.name, serial_log=str(serial_log),
            remedy="read the serial log for the boot failure; raise vm.boot_timeout_s on slow hosts",
        ) from exc
    return time.monotonic() - began


def console_watch(dom: DomainHandle, serial_log: Path) -> Callable[[], str | None]:
    """A fail-fast check for a guest that is rebooting now: only console output written after this
    call counts (the log still holds the previous, healthy boot)."""
    try:
        start = serial_log.stat().st_size
    except OSError:
        start = 0

    def check() -> str | None:
        if not dom.is_active():
            return f"{dom.name} stopped (state: {dom.state_name()}); serial log {serial_log}"
        try:
            with serial_log.open("rb") as handle:
                handle.seek(max(start, serial_log.stat().st_size - TAIL_BYTES))
                new = handle.read(TAIL_BYTES)
        except OSError:
            return None
        for marker in FATAL_MARKERS:
            if marker in new:
                return f"console shows {marker.decode()!r}; serial log {serial_log}"
        return None

    return check
