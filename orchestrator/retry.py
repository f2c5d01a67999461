"""Named retry policies, defined once.

They retry only transient errors of our own tree, always re-raise the real error (``reraise=True``)
and take an injectable ``sleep`` so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from orchestrator.errors import ConnectError, HypervisorError

Sleep = Callable[[float], None]


def ssh_ready_policy(deadline_s: float, *, sleep: Sleep = time.sleep) -> Retrying:
    """Poll a booting guest's SSH until it answers or ``deadline_s`` passes.

    Short, fixed waits: the guest is either not up yet (connection refused/reset by QEMU's user-net
    forwarder) or up; backing off would only add latency to every boot.
    """
    return Retrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(ConnectError),
        reraise=True,
        sleep=sleep,
    )


def vm_start_policy(*, sleep: Sleep = time.sleep) -> Retrying:
    """Starting a domain can lose the race for its loopback port; try a fresh port a few times."""
    return Retrying(
        stop=stop_after_attempt(3),
        wait=wait_fixed(0.2),
        retry=retry_if_exception_type(HypervisorError),
        reraise=True,
        sleep=sleep,
    )
