"""Composition root: wires settings, libvirt, transports and managers for the CLI (and later the daemon).

Kept apart from the CLI so library users and tests can build the same objects without argparse.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.audit.log import AuditLog
from orchestrator.audit.sink import AuditSink, QuietAuditSink
from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.config.settings import Settings, load_settings
from orchestrator.errors import ConfigError
from orchestrator.hypervisor.instance import InstanceRecord
from orchestrator.imaging.store import ImageStore
from orchestrator.notify.build import build_notifications
from orchestrator.notify.hub import Notifications
from orchestrator.state.db import StateDb, open_state
from orchestrator.transport.base import Transport
from orchestrator.transport.local import LocalTransport

if TYPE_CHECKING:
    # libvirt-python (a C extension needing libvirt's shared libraries) is imported only when a VM is
    # actually managed: the daemon on a host that only repairs itself never loads it (and saves ~16 MB).
    from orchestrator.hypervisor.connection import LibvirtConnection
    from orchestrator.hypervisor.vm import VmManager
    from orchestrator.transport.ssh import ParamikoTransport


@dataclass
class App:
    settings: Settings
    _conn: LibvirtConnection | None = field(default=None, init=False)
    _hv_conns: dict[str, LibvirtConnection] = field(default_factory=dict, init=False)
    _hv_vms: dict[str, VmManager] = field(default_factory=dict, init=False)

    @classmethod
    def from_env(cls) -> App:
        return cls(load_settings())

    @functools.cached_property
    def local(self) -> LocalTransport:
        return LocalTransport(env_overrides={"LC_ALL": "C"})

    @property
    def conn(self) -> LibvirtConnection:
        from orchestrator.hypervisor.connection import LibvirtConnection

        if self._conn is None:
            self._conn = LibvirtConnection(self.settings.libvirt_uri)
        return self._conn

    @functools.cached_property
    def audit(self) -> AuditLog:
        """The audit trail (``audit.path``); nothing is opened until the first record."""
        return AuditLog(self.settings.audit.path)

    @functools.cached_property
    def quiet_audit(self) -> AuditSink:
        """The audit log for code paths where the target matters more than the record (applying,
        rolling back, recovering, notifying): a failed append is logged instead of raised."""
        return QuietAuditSink(self.audit)

    @functools.cached_property
    def notifier(self) -> Notifications:
        """Every notification of this process goes through this one hub (``notify:`` in config.yaml);
        :meth:`close` gives its background deliveries a bounded time to finish."""
        return build_notifications(self.settings.notify, self.settings.reboot, self.quiet_audit)

    @functools.cached_property
    def images(self) -> ImageStore:
        return ImageStore(self.settings.image_store)

    @functools.cached_property
    def vms(self) -> VmManager:
        from orchestrator.hypervisor.vm import VmManager

        return VmManager(self.settings, self.conn, self.local, self.ssh_to_vm)

    @functools.cached_property
    def state(self) -> StateDb:
        """The state store, opened (and integrity-checked) on first use.

        Raises:
            StateCorruptError: the store cannot be trusted; vmrepair refuses to act.
        """
        return open_state(self.settings.state_db)

    @functools.cached_property
    def state_view(self) -> StateDb:
        """The state store for commands that only look: nothing on disk is created, chmodded or
        migrated (a missing store reads as empty). Writing through it raises StateError.

        Raises:
            StateCorruptError: the store cannot be trusted; vmrepair refuses to act.
        """
        return open_state(self.settings.state_db, readonly=True)

    def ssh_to_vm(self, record: InstanceRecord, connect_timeout: float) -> Transport:
        """The guest's sshd on its forwarded loopback port; for a VM on another hypervisor, that
        host's loopback reached through the hypervisor's sshd as a jump host (direct-tcpip)."""
        # paramiko is imported only when a VM is actually contacted.
        from orchestrator.transport.ssh import ParamikoTransport

        via = self.hypervisor_ssh(record.hypervisor, connect_timeout) if record.hypervisor else None
        return ParamikoTransport(
            host="127.0.0.1",
            port=record.ssh_port,
            user=record.user,
            key_file=self.settings.client_key,
            host_key=record.host_key,
            connect_timeout=connect_timeout,
            command_timeout=self.settings.ssh.command_timeout_s,
            via=via,
        )

    # -- remote hypervisors (issue 15) ---------------------------------------------------------------
    def hypervisor(self, name: str) -> HypervisorSettings:
        """Raises: ConfigError when ``hypervisors:`` has no entry ``name`` (a record from an old config)."""
        for hv in self.settings.hypervisors:
            if hv.name == name:
                return hv
        raise ConfigError(f"no hypervisor named {name!r} in `hypervisors:`",
                          remedy="restore its entry, or destroy the VMs that were made on it")

    def hypervisor_conn(self, name: str) -> LibvirtConnection:
        from orchestrator.hypervisor.connection import LibvirtConnection
        from orchestrator.hypervisor.remote import libvirt_open_uri

        if name not in self._hv_conns:
            self._hv_conns[name] = LibvirtConnection(libvirt_open_uri(self.hypervisor(name)))
        return self._hv_conns[name]

    def hypervisor_ssh(self, name: str, connect_timeout: float) -> ParamikoTransport:
        """The hypervisor's sshd: host key pinned by its known_hosts (RejectPolicy)."""
        from orchestrator.transport.ssh import ParamikoTransport

        ssh = self.hypervisor(name).ssh
        if ssh is None:
            raise ConfigError(f"hypervisor {name!r} has no `ssh:` settings")
        return ParamikoTransport(
            host=ssh.host, port=ssh.port, user=ssh.user, key_file=ssh.identity_file,
            known_hosts=ssh.known_hosts, connect_timeout=connect_timeout,
            command_timeout=self.settings.ssh.command_timeout_s, key_owner_uid=os.getuid(),
        )

    def vms_on(self, name: str) -> VmManager:
        """The VM manager of hypervisor ``name`` (the local one for a ``qemu:///system`` entry)."""
        from orchestrator.hypervisor.remote import image_pool
        from orchestrator.hypervisor.site import RemoteSite
        from orchestrator.hypervisor.vm import VmManager

        hv = self.hypervisor(name)
        if not hv.is_remote:
            return self.vms
        if name not in self._hv_vms:
            conn = self.hypervisor_conn(name)
            site = RemoteSite(name, image_pool(hv, conn), self.local,
                              self.hypervisor_ssh(name, self.settings.ssh.connect_timeout_s))
            self._hv_vms[name] = VmManager(self.settings, conn, self.local, self.ssh_to_vm, site)
        return self._hv_vms[name]

    def vm_managers(self) -> list[tuple[str, Callable[[], VmManager]]]:
        """(hypervisor, opener of its VM manager): the local one (``""``), then every configured remote
        hypervisor. Openers, not managers: a caller cleaning up asks each in turn, and one that cannot
        be reached must not keep the others from being cleaned."""
        remote = [(hv.name, functools.partial(self.vms_on, hv.name))
                  for hv in self.settings.hypervisors if hv.is_remote]
        return [("", lambda: self.vms), *remote]

    def place_vm(self, needed: frozenset[str]) -> VmManager:
        """The manager to start a troubleshooting VM with: the local one without ``hypervisors:``,
        else the least loaded hypervisor holding the content ids ``needed`` (see placement).

        Raises:
            HypervisorError: no configured hypervisor is reachable with a free slot.
        """
        from orchestrator.hypervisor.placement import choose_hypervisor
        from orchestrator.hypervisor.remote import probe_hypervisor

        if not self.settings.hypervisors:
            return self.vms
        names = [hv.name for hv in self.settings.hypervisors]
        chosen = choose_hypervisor(
            names, lambda n: probe_hypervisor(self.hypervisor(n), self._probe_conn(n), needed), needed)
        return self.vms_on(chosen.name)

    def _probe_conn(self, name: str) -> LibvirtConnection:
        return self.conn if not self.hypervisor(name).is_remote else self.hypervisor_conn(name)

    def close(self) -> None:
        if "notifier" in self.__dict__:
            self.notifier.close()
        if self._conn is not None:
            self._conn.close()
        for conn in self._hv_conns.values():
            conn.close()
        if "state" in self.__dict__:
            self.state.close()
        if "state_view" in self.__dict__:
            self.state_view.close()
