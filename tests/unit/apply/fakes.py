"""Fakes for fix-package and apply tests: a host of files, and a transport that answers systemctl.

A host is the shared :class:`tests.unit.fake_agent.FakeAgent`, built from its files:
``FakeAgent(files={path: FakeFile(data, mode, uid, gid)}, dirs={...})``; tests edit it through its
``files``, ``symlinks`` and ``dirs`` views. Its writes and removals follow the agent's contract
(``expect_sha256`` is a precondition: ``None``: none, ``"absent"``: must not exist, a sha256: must
match; parent directories are created); faults are injected by call number
(``fail_write_on={2}``: the 2nd write_file raises AgentError; ``fail_all_writes_after``).
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import NAMES, FakeAgent, sha
from tests.unit.fake_agent import file_node as FakeFile  # a regular file of a host

__all__ = ["NAMES", "FakeAgent", "FakeFile", "sha", "systemd_transport"]


def systemd_transport(
    states: dict[str, str] | None = None, *, failing: Iterable[tuple[str, ...]] = ()
) -> FakeTransport:
    """A transport that answers systemctl: ``is-active`` from ``states`` (default active); any argv
    in ``failing`` exits 1."""
    failing = set(failing)
    states = states or {}

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv in failing:
            return 1, b"", b"Job failed. See journalctl -xe.\n"
        if argv[:2] == ("systemctl", "is-active"):
            state = states.get(argv[-1], "active")
            return (0 if state == "active" else 3), f"{state}\n".encode(), b""
        return 0, b"", b""

    return FakeTransport(handler, host="target")
