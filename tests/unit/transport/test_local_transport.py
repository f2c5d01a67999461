from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.errors import (
    CommandFailedError,
    CommandTimeoutError,
    FileTransferError,
    TransportError,
)
from orchestrator.transport.local import LocalTransport


@pytest.fixture
def local() -> LocalTransport:
    return LocalTransport(command_timeout=10)


def _is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}


def test_success_returns_output_and_status(local: LocalTransport) -> None:
    result = local.run(["echo", "hello"])
    assert result.succeeded
    assert result.argv == ("echo", "hello")
    assert result.stdout == b"hello\n"
    assert result.stderr == b""
    assert result.duration_s > 0


def test_nonzero_exit_is_a_result_and_check_raises(local: LocalTransport) -> None:
    result = local.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert result.exit_status == 3
    assert result.stderr_text == "oops\n"
    with pytest.raises(CommandFailedError, match="exited 3: oops") as info:
        local.check(["sh", "-c", "echo oops >&2; exit 3"])
    assert info.value.exit_status == 3


def test_stdin_is_fed_and_closed(local: LocalTransport) -> None:
    assert local.run(["cat"], stdin=b"abc\x00def").stdout == b"abc\x00def"


def test_large_stdin_and_output_do_not_deadlock(local: LocalTransport) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = local.run(["cat"], stdin=data, timeout=10)
    assert result.stdout == data


def test_stdin_the_child_never_reads_is_dropped(local: LocalTransport) -> None:
    result = local.run(["true"], stdin=b"x" * (2 * 1024 * 1024))
    assert result.exit_status == 0


def test_output_is_streamed_in_order(local: LocalTransport) -> None:
    chunks: list[tuple[str, bytes]] = []
    script = "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"
    local.run(["sh", "-c", script], on_output=lambda stream, data: chunks.append((stream, data)))
    assert chunks == [("stdout", b"a\n"), ("stderr", b"b\n"), ("stdout", b"c\n")]


def test_output_is_capped_and_dropped_bytes_counted(local: LocalTransport) -> None:
    seen = bytearray()
    result = local.run(
        ["head", "-c", "100000", "/dev/zero"],
        max_output=1000,
        on_output=lambda _stream, data: seen.extend(data),
    )
    assert len(result.stdout) == 1000
    assert result.stdout_dropped == 99000
    assert result.is_truncated
    assert len(seen) == 100000  # streaming is not capped


def test_timeout_kills_the_whole_process_group(local: LocalTransport) -> None:
    pids: list[int] = []

    def collect(_stream: str, data: bytes) -> None:
        pids.extend(int(word) for word in data.split())

    started = time.monotonic()
    with pytest.raises(CommandTimeoutError) as info:
        # The shell reports its own pid and its background grandchild's, then waits on it.
        local.run(["sh", "-c", "sleep 30 & echo $$ $!; wait"], timeout=0.5, on_output=collect)
    assert time.monotonic() - started < 10
    assert "0.5 s deadline" in str(info.value)
    assert info.value.argv == ["sh", "-c", "sleep 30 & echo $$ $!; wait"]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while not all(map(_is_gone, pids)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(map(_is_gone, pids)), f"still running: {pids}"


def test_default_timeout_comes_from_the_constructor() -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        LocalTransport(command_timeout=0.3).run(["sleep", "30"])
    assert time.monotonic() - started < 10


def test_missing_program_is_named(local: LocalTransport) -> None:
    with pytest.raises(TransportError, match="'no-such-program-vmrepair' not found"):
        local.run(["no-such-program-vmrepair", "--help"])


def test_failing_callback_does_not_leave_the_child_running(local: LocalTransport) -> None:
    pids: list[int] = []

    def explode(_stream: str, data: bytes) -> None:
        pids.append(int(data))
        raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        local.run(["sh", "-c", "echo $$; exec sleep 30"], on_output=explode)
    assert _is_gone(pids[0])


def test_env_overrides_apply_to_every_command() -> None:
    transport = LocalTransport(env_overrides={"LC_ALL": "C", "VMREPAIR_PROBE": "x y"})
    result = transport.run(["sh", "-c", 'echo "$LC_ALL/$VMREPAIR_PROBE/${HOME:+home}"'])
    assert result.stdout == b"C/x y/home\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("echo hi", "argv must be a list of strings"),
        ([], "argv is empty"),
        (["echo", "a\0b"], "bad argument"),
        (["echo", b"bytes"], "bad argument"),
    ],
)
def test_malformed_argv_is_refused(local: LocalTransport, argv: object, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        local.run(argv)  # type: ignore[arg-type]


def test_put_file_copies_atomically_with_mode(local: LocalTransport, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"payload")
    target = tmp_path / "dest" / "file"
    target.parent.mkdir()
    local.put_file(source, str(target), mode=0o640)
    assert target.read_bytes() == b"payload"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["file"]


def test_get_file_enforces_max_bytes(local: LocalTransport, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.write_bytes(b"x" * 100)
    copy = tmp_path / "copy"
    local.get_file(str(remote), copy, max_bytes=100)
    assert copy.read_bytes() == b"x" * 100
    with pytest.raises(FileTransferError, match="100 bytes, larger than the 99 allowed"):
        local.get_file(str(remote), tmp_path / "other", max_bytes=99)
    assert not (tmp_path / "other").exists()


def test_file_errors_name_the_paths(local: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(FileTransferError, match="missing"):
        local.get_file(str(tmp_path / "missing"), tmp_path / "copy")
    with pytest.raises(FileTransferError, match="must be absolute"):
        local.put_file(tmp_path / "missing", "relative/path")
    with pytest.raises(FileTransferError, match="missing"):
        local.put_file(tmp_path / "missing", str(tmp_path / "dest"))
