"""wait_for_ssh: polls until `true` runs, fails fast on fatal console markers and stopped domains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import BootError, ConnectError
from orchestrator.hypervisor.boot import serial_tail, wait_for_ssh
from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection
from orchestrator.hypervisor.domain_xml import (
    DirectKernelBoot,
    DiskSpec,
    DomainSpec,
    InstanceMetadata,
    UserNetSpec,
)
from orchestrator.transport.base import Transport
from orchestrator.transport.fake import FakeTransport


def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def running(libvirt_conn: LibvirtConnection, tmp_path: Path) -> Iterator[DomainHandle]:
    spec = DomainSpec(
        name="vmrepair-boot", domain_type="test", memory_mib=256, vcpus=1,
        boot=DirectKernelBoot(Path("/k"), Path("/i"), "console=ttyS0"),
        disk=DiskSpec(tmp_path / "disk.qcow2"), net=UserNetSpec(40022),
        serial_log=tmp_path / "serial.log",
        metadata=InstanceMetadata("boot", "debian-12", 40022, str(tmp_path)),
    )
    dom = libvirt_conn.define(spec.to_xml(), spec.name)
    dom.start()
    yield dom


class Guest:
    """An SSH factory: refuses ``refusals`` times, then `true` exits ``exit_status``."""

    def __init__(self, refusals: int = 0, exit_status: int = 0) -> None:
        self.refusals = refusals
        self.exit_status = exit_status
        self.connects = 0
        self.transports: list[FakeTransport] = []

    def __call__(self) -> Transport:
        self.connects += 1
        if self.connects <= self.refusals:
            raise ConnectError("Connection refused", host="127.0.0.1:40022")
        transport = FakeTransport(lambda argv, stdin: (self.exit_status, b"", b""))
        self.transports.append(transport)
        return transport


def test_returns_once_ssh_answers(running: DomainHandle, tmp_path: Path) -> None:
    guest = Guest(refusals=3)
    sleeps: list[float] = []
    seconds = wait_for_ssh(running, guest, serial_log=tmp_path / "serial.log", deadline_s=60,
                           sleep=sleeps.append)
    assert seconds >= 0
    assert guest.connects == 4
    assert sleeps == [0.5, 0.5, 0.5]
    (transport,) = guest.transports
    assert transport.argvs == [("true",)]
    assert transport.is_closed


def test_fatal_console_marker_fails_immediately(running: DomainHandle, tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"[    1.2] VFS: Unable to mount root fs\n"
                    b"[    1.3] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    guest = Guest(refusals=1000)
    with pytest.raises(BootError) as info:
        wait_for_ssh(running, guest, serial_log=log, deadline_s=3600, sleep=_no_sleep)
    assert info.value.message == (
        "vmrepair-boot cannot boot: console shows 'Kernel panic - not syncing'"
    )
    assert info.value.serial_log == str(log)
    assert info.value.domain == "vmrepair-boot"
    assert guest.connects == 0


def test_marker_appearing_while_polling_stops_the_wait(
    running: DomainHandle, tmp_path: Path
) -> None:
    log = tmp_path / "serial.log"
    guest = Guest(refusals=1000)

    def sleep(_seconds: float) -> None:
        if guest.connects == 2:
            log.write_bytes(b"You are in emergency mode. After logging in, type ...\n")

    with pytest.raises(BootError, match="console shows 'You are in emergency mode'"):
        wait_for_ssh(running, guest, serial_log=log, deadline_s=3600, sleep=sleep)
    assert guest.connects == 2


def test_stopped_domain_fails_immediately(running: DomainHandle, tmp_path: Path) -> None:
    running.force_stop()
    guest = Guest()
    with pytest.raises(BootError) as info:
        wait_for_ssh(running, guest, serial_log=tmp_path / "s.log", deadline_s=3600,
                     sleep=_no_sleep)
    assert info.value.message == "vmrepair-boot stopped while booting (state: shut off)"
    assert guest.connects == 0


def test_deadline_names_the_last_error_and_the_serial_log(
    running: DomainHandle, tmp_path: Path
) -> None:
    log = tmp_path / "serial.log"
    with pytest.raises(BootError) as info:
        wait_for_ssh(running, Guest(refusals=1000), serial_log=log, deadline_s=1e-9,
                     sleep=_no_sleep)
    assert info.value.message.startswith("vmrepair-boot did not answer SSH within 0 s")
    assert "(last error: Connection refused)" in info.value.message
    assert info.value.serial_log == str(log)
    assert info.value.remedy is not None
    assert "boot_timeout_s" in info.value.remedy
    assert isinstance(info.value.__cause__, ConnectError)


def test_failing_true_counts_as_not_ready(running: DomainHandle, tmp_path: Path) -> None:
    with pytest.raises(BootError, match=r"last error: `true` exited 1 over SSH"):
        wait_for_ssh(running, Guest(exit_status=1), serial_log=tmp_path / "s.log",
                     deadline_s=1e-9, sleep=_no_sleep)


def test_serial_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"a" * 100 + b"END")
    assert serial_tail(log, limit=5) == b"aaEND"
    assert serial_tail(tmp_path / "absent") == b""
