from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import (
    CommandFailedError,
    CommandTimeoutError,
    FileTransferError,
    TransportError,
)
from orchestrator.transport.base import CommandResult
from orchestrator.transport.fake import FakeCall, FakeTransport


def test_records_every_call_and_answers_from_the_handler() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "cat":
            return 0, stdin or b"", b""
        return 3, b"inactive\n", b"unit failed\n"

    transport = FakeTransport(handler)
    assert transport.run(["cat"], stdin=b"in", timeout=5).stdout == b"in"
    result = transport.run(["systemctl", "is-active", "nginx"])
    assert (result.exit_status, result.stdout_text) == (3, "inactive\n")
    assert transport.calls == [
        FakeCall(("cat",), b"in", 5),
        FakeCall(("systemctl", "is-active", "nginx"), None, None),
    ]
    assert transport.argvs == [("cat",), ("systemctl", "is-active", "nginx")]
    with pytest.raises(CommandFailedError, match="exited 3: unit failed"):
        transport.check(["systemctl", "start", "nginx"])


def test_default_handler_succeeds_silently() -> None:
    assert FakeTransport().run(["anything"]).succeeded


def test_command_result_from_the_handler_gets_the_real_argv() -> None:
    canned = CommandResult(argv=(), exit_status=0, stdout=b"ok", stderr=b"")
    result = FakeTransport(lambda argv, stdin: canned).run(["uname", "-r"])
    assert result.argv == ("uname", "-r")
    assert result.stdout == b"ok"


def test_handler_errors_simulate_faults() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> CommandResult:
        raise CommandTimeoutError("fake: hung", host="fake", argv=list(argv))

    transport = FakeTransport(hang)
    with pytest.raises(CommandTimeoutError, match="hung"):
        transport.run(["sleep", "999"])
    assert transport.argvs == [("sleep", "999")]


def test_output_goes_through_the_same_cap_and_sink() -> None:
    chunks: list[tuple[str, bytes]] = []
    transport = FakeTransport(lambda argv, stdin: (0, b"x" * 10, b"err"))
    result = transport.run(["x"], max_output=4, on_output=lambda s, c: chunks.append((s, c)))
    assert (result.stdout, result.stdout_dropped, result.stderr) == (b"xxxx", 6, b"err")
    assert chunks == [("stdout", b"x" * 10), ("stderr", b"err")]


def test_argv_is_validated_like_real_transports() -> None:
    with pytest.raises(TransportError, match="argv is empty"):
        FakeTransport().run([])


def test_files_round_trip_through_the_dict(tmp_path: Path) -> None:
    transport = FakeTransport(files={"/etc/hostname": b"guest\n"})
    transport.get_file("/etc/hostname", tmp_path / "hostname")
    assert (tmp_path / "hostname").read_bytes() == b"guest\n"
    (tmp_path / "conf").write_bytes(b"new")
    transport.put_file(tmp_path / "conf", "/etc/app.conf", mode=0o600)
    assert transport.files["/etc/app.conf"] == b"new"
    assert transport.modes == {"/etc/app.conf": 0o600}
    with pytest.raises(FileTransferError, match="/nope: no such file"):
        transport.get_file("/nope", tmp_path / "nope")
    with pytest.raises(FileTransferError, match="larger than the 2 allowed"):
        transport.get_file("/etc/hostname", tmp_path / "h", max_bytes=2)


def test_close_is_recorded() -> None:
    with FakeTransport() as transport:
        assert not transport.is_closed
    assert transport.is_closed
