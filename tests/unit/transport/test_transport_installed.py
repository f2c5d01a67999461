"""A program missing on the target is None, whichever transport reports it."""

from __future__ import annotations

import pytest

from orchestrator.errors import CommandTimeoutError, ConnectError, TransportError
from orchestrator.transport.fake import FakeTransport
from orchestrator.transport.installed import run_if_installed


def test_exit_127_is_a_missing_program() -> None:
    transport = FakeTransport(lambda argv, stdin: (127, b"", b"sh: 1: dpkg: not found\n"))
    assert run_if_installed(transport, ["dpkg", "--audit"], timeout=5) is None


def test_file_not_found_from_the_local_transport_is_a_missing_program() -> None:
    def missing(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        error = TransportError("local: program 'dpkg' not found", host="local")
        error.__cause__ = FileNotFoundError(2, "No such file or directory", argv[0])
        raise error

    assert run_if_installed(FakeTransport(missing), ["dpkg"], timeout=5) is None


def test_other_outcomes_reach_the_caller() -> None:
    transport = FakeTransport(lambda argv, stdin: (1, b"", b"broken\n"))
    result = run_if_installed(transport, ["dpkg", "--audit"], timeout=5, max_output=1024)
    assert result is not None and result.exit_status == 1

    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("refused", host="fake")

    with pytest.raises(CommandTimeoutError):
        run_if_installed(FakeTransport(hang), ["dpkg"], timeout=5)
    with pytest.raises(ConnectError):
        run_if_installed(FakeTransport(down), ["dpkg"], timeout=5)
