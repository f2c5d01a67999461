"""Choose KVM or TCG.

KVM only when the CPU shows hardware virtualization (vmx/svm) *and* /dev/kvm can be opened. On machines
with a paravirtual KVM (``kvm_pvm``) the device node exists and libvirt even advertises ``kvm`` domains,
but a stock guest kernel hangs right after "Probing EDD" (see shared/FIELD_NOTES.md), so neither the node
nor libvirt's capabilities are trusted on their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class AccelChoice:
    accel: Accel
    reason: str

    @property
    def domain_type(self) -> str:
        """libvirt ``<domain type=...>``: ``kvm`` for KVM, ``qemu`` for TCG."""
        return "kvm" if self.accel == "kvm" else "qemu"


def cpu_has_hw_virt(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.partition(":")[2].split()
            return "vmx" in flags or "svm" in flags
    return False


def kvm_device_usable(device: Path = Path("/dev/kvm")) -> bool:
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def detect_accel(
    preference: Literal["auto", "kvm", "tcg"] = "auto",
    *,
    cpuinfo: Path = Path("/proc/cpuinfo"),
    device: Path = Path("/dev/kvm"),
) -> AccelChoice:
    if preference == "tcg":
        return AccelChoice("tcg", "forced by config (vm.accel: tcg)")
    has_flags = cpu_has_hw_virt(cpuinfo)
    usable = kvm_device_usable(device)
    if has_flags and usable:
        return AccelChoice("kvm", "CPU has vmx/svm and /dev/kvm opens")
    why = "CPU shows no vmx/svm flag" if not has_flags else f"{device} cannot be opened"
    if preference == "kvm":
        # An explicit request is honoured only when it can work; otherwise say why not.
        return AccelChoice("tcg", f"vm.accel: kvm requested but {why}; using TCG")
    return AccelChoice("tcg", f"{why}; using TCG software emulation")
