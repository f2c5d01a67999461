"""KVM only with vmx/svm *and* an openable /dev/kvm; fake cpuinfo files and device paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.hypervisor.accel import AccelChoice, cpu_has_hw_virt, detect_accel, kvm_device_usable

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme de pse tsc msr pae {extra} sse sse2 hypervisor
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme de pse tsc msr pae {extra} sse sse2 hypervisor
"""


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    return tmp_path / "cpuinfo"


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "kvm"
    path.write_bytes(b"")
    return path


def _flags(path: Path, extra: str) -> Path:
    path.write_text(CPUINFO.format(extra=extra))
    return path


@pytest.mark.parametrize(("extra", "expected"), [("vmx", True), ("svm", True), ("", False),
                                                 ("vmxnot svmx", False)])
def test_cpu_flags(cpuinfo: Path, extra: str, expected: bool) -> None:
    assert cpu_has_hw_virt(_flags(cpuinfo, extra)) is expected


def test_missing_cpuinfo_means_no_flags(tmp_path: Path) -> None:
    assert cpu_has_hw_virt(tmp_path / "absent") is False


def test_kvm_device(device: Path, tmp_path: Path) -> None:
    assert kvm_device_usable(device) is True
    assert kvm_device_usable(tmp_path / "absent") is False


def test_auto_with_flags_and_device_is_kvm(cpuinfo: Path, device: Path) -> None:
    choice = detect_accel("auto", cpuinfo=_flags(cpuinfo, "vmx"), device=device)
    assert choice == AccelChoice("kvm", "CPU has vmx/svm and /dev/kvm opens")
    assert choice.domain_type == "kvm"


def test_auto_without_flags_is_tcg_and_says_why(cpuinfo: Path, device: Path) -> None:
    choice = detect_accel("auto", cpuinfo=_flags(cpuinfo, ""), device=device)
    assert choice.accel == "tcg"
    assert choice.domain_type == "qemu"
    assert choice.reason == "CPU shows no vmx/svm flag; using TCG software emulation"


def test_auto_with_flags_but_no_device_is_tcg(cpuinfo: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-kvm"
    choice = detect_accel("auto", cpuinfo=_flags(cpuinfo, "svm"), device=missing)
    assert choice.accel == "tcg"
    assert choice.reason == f"{missing} cannot be opened; using TCG software emulation"


def test_requested_kvm_that_cannot_work_falls_back_and_says_so(cpuinfo: Path, device: Path) -> None:
    choice = detect_accel("kvm", cpuinfo=_flags(cpuinfo, ""), device=device)
    assert choice.accel == "tcg"
    assert choice.reason == "vm.accel: kvm requested but CPU shows no vmx/svm flag; using TCG"


def test_requested_kvm_that_works(cpuinfo: Path, device: Path) -> None:
    assert detect_accel("kvm", cpuinfo=_flags(cpuinfo, "vmx"), device=device).accel == "kvm"


def test_forced_tcg_ignores_the_hardware(cpuinfo: Path, device: Path) -> None:
    choice = detect_accel("tcg", cpuinfo=_flags(cpuinfo, "vmx"), device=device)
    assert choice == AccelChoice("tcg", "forced by config (vm.accel: tcg)")
