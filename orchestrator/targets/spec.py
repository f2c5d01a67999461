"""Parse and open targets. File operations on a target go through its transport, so the same code
serves all three kinds."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.hypervisor.instance import validate_vm_name
from orchestrator.transport.base import Transport

if TYPE_CHECKING:
    from orchestrator.agent.client import RemoteAgent
    from orchestrator.app import App


class TargetKind(StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    VM = "vm"


_SSH_RE = re.compile(
    r"^ssh://(?:(?P<user>[a-z_][a-z0-9_-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?/?$"
)
#: Shown under every "invalid target" error.
_FORMS = ("use `local`, `vm:NAME` (a VM from `vmrepair vm up NAME`) or `ssh://[user@]host[:port]`"
          " (host may be a Host of your ssh config)")


@dataclass(frozen=True)
class TargetSpec:
    """A target as the operator named it.

    For ``ssh://``, ``user`` and ``port`` are what the URL said. ``ssh://user@host`` means port 22 as
    it always has (so the names sessions, transactions and baselines were stored under keep meaning
    the same endpoint); without a user (``ssh://alias``) both are None and come from ssh config
    (else root and 22) when the target is opened. The text stays what was typed, never the resolved
    address: the alias is what the operator configured, and baselines are stored per :attr:`slug`.
    """

    kind: TargetKind
    name: str          # VM name, host or ssh config alias, or "local"
    user: str | None = "root"
    port: int | None = 22

    def __str__(self) -> str:
        if self.kind is TargetKind.VM:
            return f"vm:{self.name}"
        if self.kind is TargetKind.SSH:
            # An IPv6 address keeps its brackets, so the text parses back to the same target.
            host = f"[{self.name}]" if ":" in self.name else self.name
            user = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            return f"ssh://{user}{host}{port}"
        return "local"

    @property
    def slug(self) -> str:
        """File-name-safe identity (baselines are stored per target)."""
        return re.sub(r"[^A-Za-z0-9.-]+", "_", str(self)).strip("_")


def parse_target(text: str) -> TargetSpec:
    """Raises: ConfigError naming the accepted forms."""
    if text == "local":
        return TargetSpec(TargetKind.LOCAL, "local")
    if text.startswith("vm:"):
        try:
            return TargetSpec(TargetKind.VM, validate_vm_name(text[3:]))
        except ConfigError as exc:
            raise ConfigError(f"invalid target {text!r}: {exc.message}", remedy=_FORMS) from exc
    match = _SSH_RE.match(text)
    if match:
        user = match.group("user")
        # With a user the URL is the old explicit form, port 22 by default (see TargetSpec).
        port = int(match.group("port") or 22) if user or match.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"target {text!r}: port {port} out of range (1-65535)", remedy=_FORMS)
        return TargetSpec(TargetKind.SSH, match.group("host").strip("[]"), user, port)
    raise ConfigError(f"invalid target {text!r}", remedy=_FORMS)


def open_target(app: App, spec: TargetSpec) -> Transport:
    """A transport to the target.

    Raises:
        ConfigError: ssh:// target without `targets.known_hosts` in config (host keys must be pinned),
            or whose ssh config is unusable (see :func:`~orchestrator.targets.connect.connect_ssh`).
        VmNotFoundError: vm: target that does not exist.
    """
    if spec.kind is TargetKind.LOCAL:
        return app.local
    if spec.kind is TargetKind.VM:
        return app.vms.transport(spec.name)
    known_hosts = app.settings.targets.known_hosts
    if known_hosts is None:
        raise ConfigError(
            f"target {spec}: no known_hosts file configured to pin its host key",
            remedy="set `targets: {known_hosts: /etc/vmrepair/known_hosts}` in config.yaml "
            "(ssh-keyscan output verified out of band)",
        )
    from orchestrator.targets.connect import connect_ssh

    return connect_ssh(app.settings, spec, known_hosts)


@contextlib.contextmanager
def target_session(app: App, spec: TargetSpec) -> Iterator[tuple[Transport, RemoteAgent]]:
    """The target's transport and an agent on it; the agent's files are cleaned up and the transport
    closed on the way out, whatever happened.

    Raises: what :func:`open_target` raises.
    """
    from orchestrator.agent.client import RemoteAgent

    with open_target(app, spec) as transport:
        agent = RemoteAgent(transport)
        try:
            yield transport, agent
        finally:
            agent.cleanup()
