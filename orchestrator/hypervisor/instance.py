"""The on-disk record of a VM: ``<state>/vms/<name>/instance.json`` beside its overlay and serial log.

Written (atomically) before the domain is defined, so a crash at any point leaves a directory that
``vmrepair vm destroy`` / the reaper can recognise as ours and remove.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.errors import ConfigError, HypervisorError
from orchestrator.fsutil import atomic_write
from orchestrator.hypervisor.domain_xml import DOMAIN_PREFIX

RECORD = "instance.json"
OVERLAY = "disk.qcow2"
SERIAL_LOG = "serial.log"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_SNAP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_vm_name(name: str) -> str:
    """Raises: ConfigError when the name is not 1-40 of [a-z0-9-] starting with a letter/digit."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid VM name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return name


def validate_snapshot_name(name: str) -> str:
    if not _SNAP_RE.match(name):
        raise ConfigError(
            f"invalid snapshot name {name!r}: use 1-64 of letters, digits, '.', '_' and '-'"
        )
    return name


def domain_name(name: str) -> str:
    return DOMAIN_PREFIX + name


@dataclass(frozen=True)
class InstanceRecord:
    name: str
    template: str
    recipe_hash: str
    ssh_port: int
    host_key: str
    created_at: str
    ephemeral: bool = False
    owner_pid: int = 0
    user: str = "root"
    #: The configured hypervisor the VM runs on (empty: this machine, through ``libvirt_uri``).
    hypervisor: str = ""

    def save(self, vm_dir: Path) -> None:
        atomic_write(vm_dir / RECORD, json.dumps(asdict(self), indent=2).encode(), mode=0o600)

    @classmethod
    def load(cls, vm_dir: Path) -> InstanceRecord:
        path = vm_dir / RECORD
        try:
            return cls(**json.loads(path.read_bytes()))
        except FileNotFoundError as exc:
            raise HypervisorError(f"no instance record at {path}") from exc
        except (ValueError, TypeError) as exc:
            raise HypervisorError(
                f"corrupt instance record {path}: {exc}",
                remedy=f"`vmrepair vm destroy {vm_dir.name}` removes the leftovers",
            ) from exc
