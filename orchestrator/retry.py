"""Named retry policies, defined once.

They retry only transient errors of our own tree, always re-raise the real error (``reraise=True``)
and take an injectable ``sleep`` so tests never wait. The probe policies (health poll, service
settle) also retry on a failed probe *result* and hand the last one back when attempts run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from orchestrator.errors import (
    ConnectError,
    HypervisorError,
    NotifyTransientError,
    SessionRefusedError,
    VmNotFoundError,
)
from orchestrator.model import ProbeResult

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


def session_open_policy(deadline_s: float, *, sleep: Sleep = time.sleep) -> Retrying:
    """Open an SSH session again while the server refuses one (its MaxSessions counts sessions it is
    still closing: a burst of short commands met the refusal while vmrepair held 8 of 10), until the
    command's own deadline. Nothing ran, so asking again is safe; short waits, the slot frees within
    milliseconds."""
    return Retrying(
        stop=stop_after_delay(max(0.0, deadline_s)),
        wait=wait_exponential(multiplier=0.05, max=0.5),
        retry=retry_if_exception_type(SessionRefusedError),
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


def vm_stop_policy(*, sleep: Sleep = time.sleep) -> Retrying:
    """Powering a domain off can fail while the host is loaded: libvirt gives QEMU about 15 s to die
    after SIGKILL, then reports "Failed to terminate process ... Device or resource busy" (the process
    is still exiting, freeing its memory). Asking again after a pause lets it finish; the stop itself
    checks first whether the domain still runs."""
    return Retrying(
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=2, max=10),
        # A domain that is gone is not busy: asking again would only wait (VmNotFoundError).
        retry=retry_if_exception_type(HypervisorError) & retry_if_not_exception_type(VmNotFoundError),
        reraise=True,
        sleep=sleep,
    )


def has_failed_probe(value: object) -> bool:
    """A failed :class:`ProbeResult`, or a list/tuple holding one. Unavailable results (the probe could
    not run) are neither pass nor fail: retrying cannot make them answer, so they never trigger one."""
    results = value if isinstance(value, list | tuple) else [value]
    return any(isinstance(r, ProbeResult) and not r.ok and not r.is_unavailable for r in results)


def _last_outcome(state: RetryCallState) -> Any:
    # A probe still failing after the last attempt is an answer, not an error: hand it back. An error
    # is re-raised as itself by result(), never wrapped in tenacity's RetryError.
    return None if state.outcome is None else state.outcome.result()


def health_poll_policy(
    *, attempts: int, backoff_s: float, backoff_max_s: float, sleep: Sleep = time.sleep
) -> Retrying:
    """One health poll of an endpoint: re-ask with exponential backoff before it counts as failed.

    Retries while the probe returns a failed result (a blip: a worker restarting, a slow GC) and on
    ConnectError (the session to the target dropped). After ``attempts`` the last result is returned
    (the poll failed) or the last error re-raised.
    """
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_s, max=backoff_max_s),
        retry=retry_if_result(has_failed_probe) | retry_if_exception_type(ConnectError),
        retry_error_callback=_last_outcome,
        reraise=True,
        sleep=sleep,
    )


def service_settle_policy(
    *, attempts: int = 6, backoff_s: float = 1.0, backoff_max_s: float = 8.0, sleep: Sleep = time.sleep
) -> Retrying:
    """Wait for services just (re)started to pass their probes: ``systemctl start`` returns before a
    Type=simple service listens. Retries while the returned results hold a failure; returns the last
    results when they never all pass (about 30 s with the defaults)."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_s, max=backoff_max_s),
        retry=retry_if_result(has_failed_probe),
        retry_error_callback=_last_outcome,
        reraise=True,
        sleep=sleep,
    )


def host_reboot_policy(deadline_s: float, *, sleep: Sleep = time.sleep) -> Retrying:
    """Wait for a rebooting host to answer with a new boot id: a few seconds between tries (a boot
    takes tens of seconds; polling faster only adds failed SSH handshakes)."""
    return Retrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(2.0),
        retry=retry_if_exception_type(ConnectError),
        reraise=True,
        sleep=sleep,
    )



def webhook_delivery_policy(*, retries: int, backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                            sleep: Sleep = time.sleep) -> Retrying:
    """Deliver one notification to a webhook: ``retries`` more tries after the first, with exponential
    backoff, only on :class:`NotifyTransientError` (5xx, timeout, unreachable). A 4xx or a redirect is
    final: the same request would get the same answer. Runs on the notification worker thread, never
    on the repair's, so its waits hold no repair."""
    return Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff_s, max=backoff_max_s),
        retry=retry_if_exception_type(NotifyTransientError),
        reraise=True,
        sleep=sleep,
    )
