"""Composition root: wires settings, libvirt, transports and managers for the CLI (and later the daemon).

Kept apart from the CLI so library users and tests can build the same objects without argparse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.audit.log import AuditLog
from orchestrator.audit.sink import AuditSink, QuietAuditSink
from orchestrator.config.settings import Settings, load_settings
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


@dataclass
class App:
    settings: Settings
    _conn: LibvirtConnection | None = field(default=None, init=False)

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
        # paramiko is imported only when a VM is actually contacted.
        from orchestrator.transport.ssh import ParamikoTransport

        return ParamikoTransport(
            host="127.0.0.1",
            port=record.ssh_port,
            user=record.user,
            key_file=self.settings.client_key,
            host_key=record.host_key,
            connect_timeout=connect_timeout,
            command_timeout=self.settings.ssh.command_timeout_s,
        )

    def close(self) -> None:
        if "notifier" in self.__dict__:
            self.notifier.close()
        if self._conn is not None:
            self._conn.close()
        if "state" in self.__dict__:
            self.state.close()
        if "state_view" in self.__dict__:
            self.state_view.close()
