"""Open an ``ssh://`` target: resolve it through ssh config, chain its jump hosts, and run as root.

A non-root login gets a :class:`~orchestrator.transport.sudo.SudoTransport` around its connection, so
everything above sees a root transport either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.transport.base import Transport
from orchestrator.transport.ssh import ParamikoTransport
from orchestrator.transport.sshconfig import (
    SshEndpoint,
    default_ssh_config,
    load_ssh_config,
    resolve_endpoint,
)
from orchestrator.transport.sudo import SudoTransport

if TYPE_CHECKING:
    from orchestrator.config.settings import Settings
    from orchestrator.targets.spec import TargetSpec


def ssh_endpoint(settings: Settings, spec: TargetSpec) -> SshEndpoint:
    """Where ``spec`` leads: ``targets.ssh_config`` (else ``~/.ssh/config`` when it exists) applied to
    what the URL said.

    Raises:
        ConfigError: the ssh config is missing (when named), unsafe or refused for this host.
    """
    path = settings.targets.ssh_config or default_ssh_config()
    return resolve_endpoint(
        spec.name,
        config=load_ssh_config(path) if path is not None else None,
        default_key=settings.targets.ssh_key or settings.client_key,
        user=spec.user,
        port=spec.port,
    )


def connect_ssh(settings: Settings, spec: TargetSpec, known_hosts: Path) -> Transport:
    """A transport running as root on ``spec`` (connected lazily, on first use). Every hop and the
    target have their host keys pinned in ``known_hosts``; closing the transport closes the hops.

    Raises:
        ConfigError: as :func:`ssh_endpoint`.
    """
    endpoint = ssh_endpoint(settings, spec)
    via: ParamikoTransport | None = None
    for hop in endpoint.jumps:
        via = _paramiko(settings, hop, known_hosts, via)
    transport = _paramiko(settings, endpoint, known_hosts, via)
    if endpoint.user == "root":
        return transport
    return SudoTransport(transport, login_user=endpoint.user)


def _paramiko(settings: Settings, endpoint: SshEndpoint, known_hosts: Path,
              via: ParamikoTransport | None) -> ParamikoTransport:
    return ParamikoTransport(
        endpoint.host, port=endpoint.port, user=endpoint.user, key_file=endpoint.key_file,
        known_hosts=known_hosts, connect_timeout=settings.ssh.connect_timeout_s,
        command_timeout=settings.ssh.command_timeout_s, via=via,
    )
