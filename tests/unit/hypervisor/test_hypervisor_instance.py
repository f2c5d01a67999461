"""VM records, names, qcow2 overlays and loopback ports."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from orchestrator.errors import CommandTimeoutError, ConfigError, HypervisorError
from orchestrator.hypervisor.disks import create_overlay
from orchestrator.hypervisor.instance import (
    RECORD,
    InstanceRecord,
    domain_name,
    validate_snapshot_name,
    validate_vm_name,
)
from orchestrator.hypervisor.ports import free_loopback_port
from orchestrator.transport.fake import FakeTransport

RECORD_VALUE = InstanceRecord(
    name="web1", template="debian-12", recipe_hash="ab" * 32, ssh_port=40022,
    host_key="ssh-ed25519 AAAA guest", created_at="2026-01-01T00:00:00+00:00",
)


@pytest.mark.parametrize("name", ["a", "web-1", "0abc", "x" * 40])
def test_valid_vm_names(name: str) -> None:
    assert validate_vm_name(name) == name
    assert domain_name(name) == f"vmrepair-{name}"


@pytest.mark.parametrize("name", ["", "Bad_Name", "-lead", "x" * 41, "a/b", "a.b", "../etc"])
def test_invalid_vm_names_explain_the_rule(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_vm_name(name)
    assert info.value.message == (
        f"invalid VM name {name!r}: use 1-40 lowercase letters, digits and '-', "
        "starting with a letter or digit"
    )


@pytest.mark.parametrize("name", ["clean", "before-fix_1.2", "A" * 64])
def test_valid_snapshot_names(name: str) -> None:
    assert validate_snapshot_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "a b", "x" * 65, "<x>"])
def test_invalid_snapshot_names(name: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid snapshot name .*: use 1-64 of letters"):
        validate_snapshot_name(name)


def test_record_round_trip(tmp_path: Path) -> None:
    RECORD_VALUE.save(tmp_path)
    assert (tmp_path / RECORD).stat().st_mode & 0o777 == 0o600
    assert InstanceRecord.load(tmp_path) == RECORD_VALUE


def test_missing_record(tmp_path: Path) -> None:
    with pytest.raises(HypervisorError, match=re.escape(f"no instance record at {tmp_path / RECORD}")):
        InstanceRecord.load(tmp_path)


@pytest.mark.parametrize("raw", [b"{", b'{"name": "x"}', b'{"name": "x", "bogus": 1}'])
def test_corrupt_record_names_the_cleanup_command(tmp_path: Path, raw: bytes) -> None:
    vm_dir = tmp_path / "web1"
    vm_dir.mkdir()
    (vm_dir / RECORD).write_bytes(raw)
    with pytest.raises(HypervisorError) as info:
        InstanceRecord.load(vm_dir)
    assert info.value.message.startswith(f"corrupt instance record {vm_dir / RECORD}: ")
    assert info.value.remedy == "`vmrepair vm destroy web1` removes the leftovers"


def test_create_overlay_runs_qemu_img_and_makes_it_private(tmp_path: Path) -> None:
    base, overlay = tmp_path / "base.qcow2", tmp_path / "disk.qcow2"

    def qemu_img(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        Path(argv[-1]).write_bytes(b"QFI\xfb")
        Path(argv[-1]).chmod(0o644)
        return 0, b"", b""

    runner = FakeTransport(qemu_img)
    create_overlay(runner, base, overlay)
    assert runner.argvs == [("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                             "-b", str(base), str(overlay))]
    assert overlay.stat().st_mode & 0o777 == 0o600


def test_create_overlay_failure_carries_qemu_img_stderr(tmp_path: Path) -> None:
    runner = FakeTransport(lambda argv, stdin: (1, b"", b"qemu-img: Could not open base\n"))
    with pytest.raises(HypervisorError) as info:
        create_overlay(runner, tmp_path / "b", tmp_path / "o")
    assert info.value.message == (
        f"cannot create overlay {tmp_path / 'o'} on {tmp_path / 'b'}: qemu-img: Could not open base"
    )
    assert info.value.remedy == "check free space in the state directory"


def test_create_overlay_transport_error_is_mapped(tmp_path: Path) -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("qemu-img hung", argv=list(argv))

    with pytest.raises(HypervisorError, match="cannot run qemu-img: qemu-img hung") as info:
        create_overlay(FakeTransport(hang), tmp_path / "b", tmp_path / "o")
    assert info.value.remedy == "run `make setup`"


def test_free_loopback_port_can_be_bound() -> None:
    port = free_loopback_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
