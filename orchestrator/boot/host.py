"""Reboot a host over its transport and wait for it to come back: the same code for the troubleshooting
VM, a ``vm:`` patient and an ``ssh://`` host.

A reboot is proven by a new ``/proc/sys/kernel/random/boot_id``, never by SSH answering (it may answer
before the reboot actually started). ``systemctl --no-block reboot`` queues the job and returns, so the
command does not race the connection being torn down.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import ConnectError, RebootError, TransportError
from orchestrator.retry import Sleep, host_reboot_policy
from orchestrator.systemd import reboot_argv
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_BOOT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class RebootResult:
    boot_id_before: str
    boot_id_after: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {"boot_id_before": self.boot_id_before, "boot_id_after": self.boot_id_after,
                "seconds": round(self.seconds, 1)}


def boot_id(transport: Transport) -> str:
    """The host's current boot id (validated: it is guest output).

    Raises:
        TransportError: unreachable or the answer is not a boot id.
    """
    text = transport.check(["cat", BOOT_ID_PATH], timeout=15).stdout_text.strip()
    if not _BOOT_ID_RE.match(text):
        raise TransportError(f"unexpected boot id {text[:60]!r} from {BOOT_ID_PATH}")
    return text


def reboot_host(
    connect: Callable[[], Transport],
    *,
    deadline_s: float,
    fail_fast: Callable[[], str | None] | None = None,
    sleep: Sleep = time.sleep,
) -> RebootResult:
    """Reboot the host ``connect()`` reaches and return once it answers with a new boot id.

    ``fail_fast`` is polled while waiting; a non-None answer (e.g. "console shows emergency mode")
    ends the wait at once.

    Raises:
        RebootError: the reboot could not be requested, or the host did not come back before the
            deadline (the message says which and how long was waited).
    """
    began = time.monotonic()
    try:
        with connect() as transport:
            before = boot_id(transport)
            transport.check(reboot_argv(), timeout=30)
    except TransportError as exc:
        raise RebootError(f"cannot request the reboot: {exc.message}") from exc
    log.info("reboot requested (boot id %s)", before)

    def came_back() -> str:
        if fail_fast is not None and (why := fail_fast()) is not None:
            raise RebootError(f"the host cannot come back: {why}")
        try:
            with connect() as transport:
                now = boot_id(transport)
        except TransportError as exc:
            raise ConnectError(exc.message) from exc
        if now == before:
            raise ConnectError("still the old boot (the reboot has not happened yet)")
        return now

    try:
        after = host_reboot_policy(deadline_s, sleep=sleep)(came_back)
    except ConnectError as exc:
        raise RebootError(
            f"the host did not come back within {deadline_s:.0f} s of the reboot (last: {exc.message})",
            remedy="check the host's console; no further reboot is attempted",
        ) from exc
    return RebootResult(before, after, time.monotonic() - began)
