"""sd_notify: datagrams to $NOTIFY_SOCKET (path or abstract), nothing without it."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.daemon.notify import SystemdNotifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in tmp_path standing in for systemd's notification socket."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield str(path), sock


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier(env={})
    assert not notifier.is_enabled
    assert notifier.ready("up") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s is None


def test_ready_status_watchdog_and_stopping_reach_the_socket(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": address})
    assert notifier.ready("recovered")
    assert sock.recv(4096) == b"READY=1\nSTATUS=recovered"
    assert notifier.status("2 issues")
    assert sock.recv(4096) == b"STATUS=2 issues"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_status_text_cannot_add_fields(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    SystemdNotifier(env={"NOTIFY_SOCKET": address}).status("bad\nREADY=1")
    assert sock.recv(4096) == b"STATUS=bad READY=1"


def test_abstract_socket_name() -> None:
    name = f"vmrepair-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert SystemdNotifier(env={"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.is_enabled
    assert notifier.watchdog() is False
    assert "sd_notify WATCHDOG=1 failed" in caplog.text


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(env=env).watchdog_interval_s == 30.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier(env=env).watchdog_interval_s is None


def test_unsupported_address_turns_notifications_off(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.is_enabled
    assert "is not a unix socket address" in caplog.text
