"""Host-key policy of :class:`~orchestrator.transport.ssh.ParamikoTransport`: which key a host must
present, from a pinned OpenSSH key line or a known_hosts file, and the error a mismatch becomes.

Separate from the connection code because it is policy, not plumbing: the key is pinned (the
transport sets paramiko's RejectPolicy, never AutoAdd), and every way of stating it is checked here.
"""

from __future__ import annotations

import base64
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from orchestrator.errors import HostKeyError, TransportError


class HostKeyPin:
    """The key(s) ``host`` (``user@address:port``, for messages) must present at ``address:port``.

    Raises (from the constructor):
        TransportError: not exactly one of ``host_key`` and ``known_hosts`` was given.
        HostKeyError: ``host_key`` is not an OpenSSH public key line.
    """

    def __init__(self, host: str, address: str, port: int, *, host_key: str | None,
                 known_hosts: Path | None) -> None:
        self.host = host
        if (host_key is None) == (known_hosts is None):
            raise TransportError(f"{host}: pass exactly one of host_key or known_hosts")
        #: OpenSSH's known_hosts naming rule, which paramiko applies when it looks the key up.
        self.name = address if port == 22 else f"[{address}]:{port}"
        self._pinned = None if host_key is None else self._parse(host_key)
        self._known_hosts = known_hosts

    def expected_keys(self) -> list[paramiko.PKey]:
        """The keys the host may present; read from known_hosts at every call (it may be updated).

        Raises:
            HostKeyError: known_hosts cannot be read or has no entry for this host.
        """
        if self._known_hosts is None:
            return [self._pinned] if self._pinned is not None else []
        try:
            entries = paramiko.HostKeys(str(self._known_hosts)).lookup(self.name)
        except OSError as exc:
            raise HostKeyError(
                f"{self.host}: cannot read known_hosts {self._known_hosts}: {exc}", host=self.host
            ) from exc
        if not entries:
            raise HostKeyError(
                f"{self.host}: no key for {self.name} in {self._known_hosts}",
                host=self.host,
                remedy=f"add the host's verified public key to {self._known_hosts}",
            )
        return list(entries.values())

    def mismatch(self, want: list[paramiko.PKey], got: paramiko.PKey | None) -> HostKeyError:
        """The error for a host that presented ``got`` (None: unknown) instead of one of ``want``."""
        source = "the pinned host_key" if self._pinned else f"known_hosts file {self._known_hosts}"
        expected = ", ".join(map(_describe, want))
        return HostKeyError(
            f"{self.host}: host key mismatch: expected {expected} ({source}),"
            f" host presented {_describe(got) if got else 'an unknown key'}",
            host=self.host,
            remedy="if the host was legitimately re-keyed, verify the new key out of band and"
            f" update {source}; otherwise treat the connection as intercepted",
        )

    def _parse(self, line: str) -> paramiko.PKey:
        parts = line.split()
        try:
            blob = base64.b64decode(parts[1], validate=True)
            return paramiko.PKey.from_type_string(parts[0], blob)
        # binascii.Error is a ValueError.
        except (IndexError, ValueError, paramiko.SSHException, UnknownKeyType) as e:
            raise HostKeyError(
                f"{self.host}: pinned host key {line!r} is not an OpenSSH public key line"
                " ('TYPE BASE64 [comment]')",
                host=self.host,
            ) from e


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"
