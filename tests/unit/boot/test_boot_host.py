"""reboot_host: proven by a new boot id, bounded by a deadline, failing fast on a console marker."""

from __future__ import annotations

import pytest

from orchestrator.boot.host import BOOT_ID_PATH, reboot_host
from orchestrator.errors import RebootError
from orchestrator.transport.fake import FakeTransport

OLD = "0f6bb6d2-1111-4222-8333-944455556666"
NEW = "7a1c9e40-2222-4333-8444-a55566667777"


class Host:
    """Answers the old boot id until ``down_polls`` connections after the reboot, then the new one."""

    def __init__(self, down_polls: int = 2, new: str = NEW, reboot_exit: int = 0) -> None:
        self.booted, self.down_polls, self.new, self.reboot_exit = False, down_polls, new, reboot_exit
        self.connects, self.argvs = 0, []

    def connect(self) -> FakeTransport:
        self.connects += 1
        if self.booted:
            self.down_polls -= 1
        return FakeTransport(self.handler)

    def handler(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        self.argvs.append(argv)
        if argv == ("cat", BOOT_ID_PATH):
            if self.booted and self.down_polls > 0:
                return 255, b"", b"Connection refused"
            return 0, (self.new if self.booted else OLD).encode() + b"\n", b""
        if argv == ("systemctl", "--no-block", "reboot"):
            self.booted = True
            return self.reboot_exit, b"", b""
        return 1, b"", b"unexpected"


def test_reboot_waits_for_a_new_boot_id() -> None:
    host = Host(down_polls=3)
    result = reboot_host(host.connect, deadline_s=60, sleep=lambda s: None)
    assert (result.boot_id_before, result.boot_id_after) == (OLD, NEW)
    assert ("systemctl", "--no-block", "reboot") in host.argvs
    assert host.connects >= 4


def test_a_host_that_answers_with_the_same_boot_never_counts_as_rebooted() -> None:
    host = Host(down_polls=0, new=OLD)
    with pytest.raises(RebootError, match=r"did not come back within 0 s .*still the old boot") as info:
        reboot_host(host.connect, deadline_s=0.0, sleep=lambda s: None)
    assert info.value.remedy == "check the host's console; no further reboot is attempted"


def test_a_console_marker_ends_the_wait_at_once() -> None:
    host = Host(down_polls=10**6)
    calls = []

    def fail_fast() -> str | None:
        calls.append(1)
        return "console shows 'You are in emergency mode'" if len(calls) > 1 else None

    with pytest.raises(RebootError, match="the host cannot come back: console shows 'You are in emergency"):
        reboot_host(host.connect, deadline_s=600, fail_fast=fail_fast, sleep=lambda s: None)


def test_a_refused_reboot_request_is_reported() -> None:
    host = Host(reboot_exit=1)
    with pytest.raises(RebootError, match="cannot request the reboot"):
        reboot_host(host.connect, deadline_s=60, sleep=lambda s: None)


def test_guest_output_that_is_not_a_boot_id_is_refused() -> None:
    def connect() -> FakeTransport:
        return FakeTransport(lambda argv, stdin: (0, b"$(reboot)\n", b""))

    with pytest.raises(RebootError, match="unexpected boot id"):
        reboot_host(connect, deadline_s=1, sleep=lambda s: None)
