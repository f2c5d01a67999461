"""Which hypervisor a troubleshooting VM runs on: the least loaded one that already holds the content
it needs, else the least loaded one; ties go to the first in config order.

Pure: each hypervisor's load and content are read through a ``probe`` the caller passes (the real one
asks each hypervisor's libvirt connection, :func:`orchestrator.hypervisor.remote.probe_hypervisor`).
An unreachable or full hypervisor is skipped with a note; when none is usable the error names each one
and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.errors import HypervisorError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HypervisorLoad:
    """What a probe found on one hypervisor."""

    name: str
    running: int
    max_vms: int
    #: Content ids (sha256) of the images and layers already synced there.
    content_ids: frozenset[str]

    @property
    def load(self) -> float:
        return self.running / self.max_vms

    @property
    def is_full(self) -> bool:
        return self.running >= self.max_vms


@dataclass(frozen=True)
class Placement:
    name: str
    #: True when the hypervisor already held every needed content id (nothing to upload).
    has_content: bool
    #: Why other hypervisors were passed over (unreachable, full).
    notes: tuple[str, ...] = ()


#: Reads one hypervisor's load, or raises HypervisorError (unreachable, libvirt failure).
Probe = Callable[[str], HypervisorLoad]


def choose_hypervisor(names: Sequence[str], probe: Probe, needed: frozenset[str]) -> Placement:
    """Pick among ``names`` (config order) for a VM that needs the content ids ``needed``.

    Raises:
        HypervisorError: no hypervisor is reachable with a free slot; the message names each and why.
    """
    usable: list[HypervisorLoad] = []
    notes: list[str] = []
    for name in names:
        try:
            found = probe(name)
        except HypervisorError as exc:
            notes.append(f"{name}: unreachable ({exc.message})")
            continue
        if found.is_full:
            notes.append(f"{name}: full ({found.running}/{found.max_vms} VMs)")
            continue
        usable.append(found)
    for note in notes:
        log.warning("placement: skipping %s", note)
    if not usable:
        raise HypervisorError(
            "no hypervisor can take a troubleshooting VM: " + "; ".join(notes or ["none configured"]),
            remedy="start libvirtd / sshd on a hypervisor, raise its max_vms, or destroy idle VMs",
        )
    holding = [h for h in usable if needed <= h.content_ids]
    # min() keeps the first of equals: ties go to config order.
    best = min(holding or usable, key=lambda h: h.load)
    return Placement(best.name, has_content=bool(holding), notes=tuple(notes))
