from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.errors import (
    CommandTimeoutError,
    ConnectError,
    FileTransferError,
    HostKeyError,
    KeyFileError,
    TransportError,
)
from orchestrator.transport.ssh import ParamikoTransport

if TYPE_CHECKING:
    from conftest import KeyPair, SSHServer

MakeTransport = Callable[..., ParamikoTransport]
MakeKeypair = Callable[[], "KeyPair"]


def _fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint, computed independently of the code under test."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_run_returns_output_and_exit_status(make_transport: MakeTransport) -> None:
    transport = make_transport()
    result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (result.exit_status, result.stdout, result.stderr) == (4, b"out\n", b"err\n")
    assert transport.run(["true"]).succeeded
    assert transport.host.startswith("tester@127.0.0.1:")


def test_hostile_arguments_arrive_as_single_argv_elements(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    hostile = ['"; rm -rf /', "$(id)", "`id`", "a\nb", "it's", "*", "~", "", "--", "-x"]
    result = make_transport().run(["printf", "%s\\0", *hostile])
    assert ssh_server.exec_log[-1] == ["printf", "%s\\0", *hostile]
    assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in hostile]


def test_stdin_is_sent_and_closed(make_transport: MakeTransport) -> None:
    data = os.urandom(1024 * 1024)  # larger than paramiko's default channel window
    result = make_transport().run(["sha256sum"], stdin=data)
    assert result.stdout_text.split()[0] == hashlib.sha256(data).hexdigest()


def test_output_is_capped_and_streamed(make_transport: MakeTransport) -> None:
    seen = bytearray()
    result = make_transport().run(
        ["head", "-c", "200000", "/dev/zero"],
        max_output=1000,
        on_output=lambda _stream, chunk: seen.extend(chunk),
    )
    assert len(result.stdout) == 1000
    assert result.stdout_dropped == 199000
    assert len(seen) == 200000


def test_hung_command_times_out_and_the_transport_recovers(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    transport = make_transport()
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError, match=r"\['hang'\] exceeded its 0.5 s deadline"):
        transport.run(["hang"], timeout=0.5)
    assert time.monotonic() - started < 5
    assert transport.run(["echo", "again"]).stdout == b"again\n"
    assert ssh_server.connections == 2  # the hung session's connection was dropped


def test_channel_closed_without_exit_status_reports_minus_one(
    make_transport: MakeTransport,
) -> None:
    result = make_transport().run(["noexit"])
    assert (result.exit_status, result.stdout) == (-1, b"bye")


def test_reconnects_once_after_the_connection_died(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    transport = make_transport()
    assert transport.run(["true"]).succeeded
    ssh_server.drop_connections()  # the guest rebooted
    assert transport.run(["echo", "back"]).stdout == b"back\n"
    assert ssh_server.connections == 2


def test_tcp_nodelay_is_set(make_transport: MakeTransport) -> None:
    transport = make_transport()
    transport.run(["true"])
    # Private access on purpose: the option lives on the socket only this module opens.
    sock = transport._client.get_transport().sock  # type: ignore[union-attr]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_wrong_pinned_host_key_is_refused(
    make_transport: MakeTransport, ssh_server: SSHServer, make_keypair: MakeKeypair
) -> None:
    impostor = make_keypair().public_line
    transport = make_transport(host_key=impostor)
    with pytest.raises(HostKeyError) as info:
        transport.run(["true"])
    message = str(info.value)
    assert f"expected ssh-ed25519 {_fingerprint(impostor)}" in message
    assert f"presented ssh-ed25519 {_fingerprint(ssh_server.host_key_line)}" in message
    assert info.value.remedy is not None
    assert "verify the new key out of band" in info.value.remedy
    assert ssh_server.exec_log == []


def test_known_hosts_file_with_port_entry(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{ssh_server.port} {ssh_server.host_key_line}\n")
    transport = make_transport(host_key=None, known_hosts=known_hosts)
    assert transport.run(["true"]).succeeded


def test_known_hosts_without_the_host_is_refused(
    make_transport: MakeTransport, tmp_path: Path, ssh_server: SSHServer
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"127.0.0.1 {ssh_server.host_key_line}\n")  # port 22 entry only
    transport = make_transport(host_key=None, known_hosts=known_hosts)
    with pytest.raises(HostKeyError, match=rf"no key for \[127.0.0.1\]:{ssh_server.port}"):
        transport.run(["true"])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"host_key": None}, TransportError, "exactly one of host_key or known_hosts"),
        ({"known_hosts": Path("/k")}, TransportError, "exactly one of host_key or known_hosts"),
        ({"host_key": "ssh-ed25519"}, HostKeyError, "not an OpenSSH public key line"),
        ({"host_key": "ssh-ed25519 not-base64!"}, HostKeyError, "not an OpenSSH public key"),
    ],
)
def test_bad_host_key_arguments(
    make_transport: MakeTransport, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_transport(**options)


def test_key_file_readable_by_others_is_refused(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    key_file = ssh_server.client_key_file
    key_file.chmod(0o644)
    with pytest.raises(KeyFileError) as info:
        make_transport().run(["true"])
    assert f"{key_file} is unsafe: mode 0644" in str(info.value)
    assert info.value.remedy is not None
    assert f"chmod 600 {key_file}" in info.value.remedy
    assert ssh_server.connections == 0  # refused before touching the network


def test_key_file_owned_by_someone_else_is_refused(make_transport: MakeTransport) -> None:
    with pytest.raises(KeyFileError, match=f"owner uid {os.getuid()}"):
        make_transport(key_owner_uid=os.getuid() + 1).run(["true"])


def test_key_file_symlink_and_missing_file_are_refused(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(ssh_server.client_key_file)
    with pytest.raises(KeyFileError, match="is a symlink"):
        make_transport(key_file=link).run(["true"])
    with pytest.raises(KeyFileError, match=r"nope cannot be opened"):
        make_transport(key_file=tmp_path / "nope").run(["true"])


def test_key_file_that_is_not_a_key_is_refused(
    make_transport: MakeTransport, tmp_path: Path
) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    junk.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an ed25519, ECDSA or RSA private key"):
        make_transport(key_file=junk).run(["true"])


def test_unauthorized_key_fails_authentication(
    make_transport: MakeTransport, tmp_path: Path, make_keypair: MakeKeypair
) -> None:
    other = make_keypair().write_private(tmp_path / "other_key")
    with pytest.raises(ConnectError, match=r"authentication as tester to 127\.0\.0\.1:\d+ failed"):
        make_transport(key_file=other).run(["true"])


def test_connection_refused_names_host_and_port(make_transport: MakeTransport) -> None:
    port = _free_port()
    with pytest.raises(ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
        make_transport(port=port, connect_timeout=2.0).run(["true"])


def test_sftp_round_trip_is_atomic_and_applies_mode(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    transport = make_transport()
    (ssh_server.sftp_root / "etc").mkdir()
    payload = os.urandom(300_000)
    source = tmp_path / "source"
    source.write_bytes(payload)
    transport.put_file(source, "/etc/app.conf", mode=0o640)
    on_server = ssh_server.sftp_root / "etc" / "app.conf"
    assert on_server.read_bytes() == payload
    assert on_server.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in on_server.parent.iterdir()] == ["app.conf"]  # no temp file left
    copy = tmp_path / "copy"
    transport.get_file("/etc/app.conf", copy, max_bytes=len(payload))
    assert copy.read_bytes() == payload
    (ssh_server.sftp_root / "empty").write_bytes(b"")
    transport.get_file("/empty", copy)
    assert copy.read_bytes() == b""


def test_sftp_errors_name_the_remote_path(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    transport = make_transport()
    (ssh_server.sftp_root / "big").write_bytes(b"x" * 100)
    with pytest.raises(FileTransferError, match="/big is 100 bytes, larger than the 10 allowed"):
        transport.get_file("/big", tmp_path / "big", max_bytes=10)
    assert not (tmp_path / "big").exists()
    with pytest.raises(FileTransferError, match="download of /missing failed"):
        transport.get_file("/missing", tmp_path / "missing")
    source = tmp_path / "source"
    source.write_bytes(b"data")
    with pytest.raises(FileTransferError, match="upload to /no/such/dir/file failed"):
        transport.put_file(source, "/no/such/dir/file")
    with pytest.raises(FileTransferError, match="must be absolute"):
        transport.put_file(source, "relative")
    assert transport.run(["true"]).succeeded  # plain SFTP errors keep the connection usable


def test_close_is_idempotent_and_the_transport_reusable(make_transport: MakeTransport) -> None:
    transport = make_transport()
    with transport as same:
        assert same is transport
        assert transport.run(["true"]).succeeded
    transport.close()
    assert transport.run(["true"]).succeeded


# -- sessions of one connection -------------------------------------------------------------------

def test_a_refused_session_fails_alone_and_spares_the_commands_in_flight(
    ssh_server: SSHServer, make_transport: Callable[..., Any]
) -> None:
    """OpenSSH refuses sessions beyond MaxSessions. That refusal used to be taken for a dead connection:
    the reconnect closed it under every running command (exit -1 all round)."""
    transport = make_transport()
    transport.run(["true"])                       # connected
    results: list[int] = []
    running = threading.Thread(target=lambda: results.append(transport.run(["sleep", "1"]).exit_status))
    running.start()
    while ssh_server.state.running == 0:
        time.sleep(0.01)
    ssh_server.state.refuse_sessions = True
    with pytest.raises(TransportError, match="refused a session"):
        transport.run(["true"], timeout=1.0)    # refused for longer than the command's deadline
    ssh_server.state.refuse_sessions = False
    running.join(10)
    assert results == [0]
    assert transport.run(["true"]).exit_status == 0
    assert ssh_server.connections == 1


def test_a_session_refused_for_a_moment_is_asked_for_again(
    ssh_server: SSHServer, make_transport: Callable[..., Any]
) -> None:
    """OpenSSH counts sessions it is still closing against MaxSessions: under a burst of short commands
    a refusal came while vmrepair held 8 of 10, and failed a target's validation (a rollback). Nothing
    ran, so the session is asked for again until the command's deadline."""
    transport = make_transport()
    transport.run(["true"])
    ssh_server.state.refuse_sessions = True
    threading.Timer(0.3, lambda: setattr(ssh_server.state, "refuse_sessions", False)).start()
    began = time.monotonic()
    assert transport.run(["true"], timeout=10).exit_status == 0
    assert 0.25 <= time.monotonic() - began < 5
    assert ssh_server.connections == 1


def test_concurrent_commands_wait_for_a_session_slot(
    ssh_server: SSHServer, make_transport: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.transport import ssh

    monkeypatch.setattr(ssh, "MAX_SESSIONS", 2)
    transport = make_transport()
    with ThreadPoolExecutor(max_workers=5) as pool:
        codes = list(pool.map(lambda _: transport.run(["sleep", "0.3"]).exit_status, range(5)))
    assert codes == [0] * 5
    assert ssh_server.state.most_running == 2


def test_a_command_that_cannot_get_a_slot_in_its_deadline_times_out(
    ssh_server: SSHServer, make_transport: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.transport import ssh

    monkeypatch.setattr(ssh, "MAX_SESSIONS", 1)
    transport = make_transport()
    busy = threading.Thread(target=lambda: transport.run(["sleep", "1"]))
    busy.start()
    while ssh_server.state.running == 0:
        time.sleep(0.01)
    with pytest.raises(CommandTimeoutError, match="waited its whole deadline for one of the 1 sessions"):
        transport.run(["true"], timeout=0.2)
    busy.join(10)
