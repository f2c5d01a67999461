"""The values :class:`~orchestrator.hypervisor.vm.VmManager` is given and hands out: the SSH factory,
and what ``up`` and ``list`` return.

Separate from :mod:`~orchestrator.hypervisor.vm` so that :mod:`~orchestrator.hypervisor.warmstart`,
which the manager uses, can build an :class:`UpResult` without importing the manager (a cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.hypervisor import instance as inst
from orchestrator.transport.base import Transport

#: Builds the SSH transport for a VM from its record (the CLI passes a paramiko one).
SshFactory = Callable[[inst.InstanceRecord, float], Transport]


#: :attr:`VmInfo.state` of a VM directory libvirt has no domain for (a leftover, or one half made).
NO_DOMAIN = "no domain"


@dataclass(frozen=True)
class VmInfo:
    name: str
    state: str
    template: str
    ssh_port: int
    ephemeral: bool
    is_stale: bool
    vm_dir: Path


@dataclass(frozen=True)
class UpResult:
    name: str
    ssh_port: int
    boot_seconds: float
    accel: str
    is_warm: bool = False
    #: Why a requested warm start fell back to a cold boot (empty when it did not).
    warm_fallback: str = ""
