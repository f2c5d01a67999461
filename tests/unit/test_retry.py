"""Named retry policies: transient errors of our tree only, the real error re-raised, no waiting."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import (
    ConnectError,
    HypervisorError,
    SessionRefusedError,
    TransportError,
    VmNotFoundError,
)
from orchestrator.retry import session_open_policy, ssh_ready_policy, vm_start_policy


def test_ssh_ready_policy_retries_connect_errors_then_succeeds() -> None:
    sleeps: list[float] = []
    attempts = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectError("refused")
        return "up"

    assert ssh_ready_policy(60, sleep=sleeps.append)(attempt) == "up"
    assert len(attempts) == 3
    assert sleeps == [0.5, 0.5]


def test_ssh_ready_policy_reraises_last_connect_error_at_deadline() -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(len(attempts))
        raise ConnectError(f"refused #{len(attempts)}")

    def short_sleep(seconds: float) -> None:
        # The deadline is wall-clock: record the policy's wait, then let a little time pass.
        sleeps.append(seconds)
        time.sleep(0.01)

    with pytest.raises(ConnectError) as info:
        ssh_ready_policy(0.05, sleep=short_sleep)(attempt)
    assert str(info.value) == f"refused #{len(attempts)}"
    assert len(attempts) >= 2
    assert len(sleeps) == len(attempts) - 1
    assert set(sleeps) == {0.5}


@pytest.mark.parametrize("error", [TransportError("boom"), HypervisorError("gone"), ValueError("x")])
def test_ssh_ready_policy_does_not_retry_other_errors(error: Exception) -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(1)
        raise error

    with pytest.raises(type(error)) as info:
        ssh_ready_policy(60, sleep=sleeps.append)(attempt)
    assert info.value is error
    assert attempts == [1]
    assert sleeps == []


def test_vm_start_policy_gives_up_after_three_attempts() -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(1)
        raise VmNotFoundError(f"attempt {len(attempts)}")

    with pytest.raises(VmNotFoundError, match="attempt 3"):
        vm_start_policy(sleep=sleeps.append)(attempt)
    assert len(attempts) == 3
    assert sleeps == [0.2, 0.2]


def test_vm_start_policy_does_not_retry_connect_errors() -> None:
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(1)
        raise ConnectError("not a hypervisor error")

    with pytest.raises(ConnectError):
        vm_start_policy(sleep=lambda _s: None)(attempt)
    assert attempts == [1]


def test_session_open_policy_asks_again_only_for_a_refused_session() -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise SessionRefusedError("refused a session")
        return "open"

    assert session_open_policy(10, sleep=sleeps.append)(attempt) == "open"
    assert len(attempts) == 3 and all(0 < s <= 0.5 for s in sleeps)

    def broken() -> str:
        raise TransportError("session broke")   # a dead connection is not asked again here

    with pytest.raises(TransportError, match="session broke"):
        session_open_policy(10, sleep=sleeps.append)(broken)
