"""Fixtures for transport tests: keys, and a real in-process SSH/SFTP server on 127.0.0.1.

The server runs each exec request's command line with ``shlex.split`` + :mod:`subprocess` in the
test process, so quoting is tested end to end. Two command names are special:

* ``hang``: never answers (no output, no exit status) until the client goes away.
* ``noexit``: writes ``bye`` and closes the channel without an exit status.

It also forwards ``direct-tcpip`` channels (what a ProxyJump hop is asked for) to their destination,
recording each destination in ``forwarded``.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shlex
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


@dataclass
class KeyPair:
    private_pem: str
    public_line: str  # "ssh-ed25519 AAAA..."

    @property
    def paramiko_key(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_pem))

    def write_private(self, path: Path, mode: int = 0o600) -> Path:
        path.write_text(self.private_pem)
        path.chmod(mode)
        return path


def new_keypair() -> KeyPair:
    # paramiko cannot generate ed25519 keys; cryptography can, in OpenSSH formats paramiko reads.
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return KeyPair(private, public)


@dataclass
class ServerState:
    host_key: KeyPair
    client_key: KeyPair
    sftp_root: Path
    exec_log: list[list[str]] = field(default_factory=list)
    transports: list[paramiko.Transport] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Refuse new session channels (as OpenSSH does beyond MaxSessions).
    refuse_sessions: bool = False
    #: Accept direct-tcpip channels (a jump host with AllowTcpForwarding yes).
    allow_forwarding: bool = True
    forwarded: list[tuple[str, int]] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ExecServer(paramiko.ServerInterface):
    def __init__(self, state: ServerState, transport: paramiko.Transport) -> None:
        self.state = state
        self.transport = transport
        self.sftp_root = state.sftp_root
        self._authorized = state.client_key.paramiko_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self._authorized else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" and not self.state.refuse_sessions:
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        if not self.state.allow_forwarding:
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.state.forwarded.append(destination)
        try:
            upstream = socket.create_connection(destination, timeout=5)
        except OSError:
            return paramiko.OPEN_FAILED_CONNECT_FAILED
        thread = threading.Thread(target=self._forward, args=(chanid, upstream), daemon=True)
        self.state.threads.append(thread)
        thread.start()
        return paramiko.OPEN_SUCCEEDED

    def _forward(self, chanid: int, upstream: socket.socket) -> None:
        """Pump bytes between the channel ``chanid`` (once paramiko has opened it) and ``upstream``."""
        channel = None
        while channel is None:
            accepted = self.transport.accept(5)
            if accepted is None:
                upstream.close()
                return
            if accepted.get_id() == chanid:  # other accepted channels are sessions, served elsewhere
                channel = accepted
        try:
            self._pump(channel, upstream)
        finally:
            upstream.close()
            with contextlib.suppress(EOFError, OSError):  # the client may be gone already
                channel.close()

    def _pump(self, channel: paramiko.Channel, upstream: socket.socket) -> None:
        while not self.state.stop.is_set():
            ready, _, _ = select.select([channel, upstream], [], [], 0.1)
            try:
                if channel in ready:
                    data = channel.recv(65536)
                    if not data:
                        return
                    upstream.sendall(data)
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    channel.sendall(data)
            except (EOFError, OSError):
                return

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        argv = shlex.split(command.decode())
        self.state.exec_log.append(argv)
        thread = threading.Thread(target=self._execute, args=(channel, argv), daemon=True)
        self.state.threads.append(thread)
        thread.start()
        return True

    def _execute(self, channel: paramiko.Channel, argv: list[str]) -> None:
        with self.state.lock:
            self.state.running += 1
            self.state.most_running = max(self.state.most_running, self.state.running)
        try:
            # Reading stdin to EOF first also guarantees the client has seen the exec reply:
            # paramiko sends it only after check_channel_exec_request returns.
            stdin = b""
            while chunk := channel.recv(65536):
                stdin += chunk
            if argv == ["hang"]:
                while not channel.closed and not self.state.stop.wait(0.05):
                    pass
                return
            if argv == ["noexit"]:
                channel.sendall(b"bye")
                return
            try:
                proc = subprocess.run(
                    argv, input=stdin, capture_output=True, timeout=20, check=False
                )
                out, err, status = proc.stdout, proc.stderr, proc.returncode
            except FileNotFoundError:
                out, err, status = b"", f"{argv[0]}: not found\n".encode(), 127
            channel.sendall(out)
            channel.sendall_stderr(err)
            channel.send_exit_status(status)
        except OSError:
            pass  # the client hung up on us; that is what some tests do
        finally:
            with self.state.lock:
                self.state.running -= 1
            channel.close()


class _StubSFTPHandle(paramiko.SFTPHandle):
    filename: str
    readfile: Any

    def stat(self) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        try:
            paramiko.SFTPServer.set_file_attr(self.filename, attr)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return paramiko.SFTP_OK


class _StubSFTPServer(paramiko.SFTPServerInterface):
    """Serves ``sftp_root`` as ``/`` (after paramiko's tests/_stub_sftp.py)."""

    def __init__(self, server: _ExecServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = str(server.sftp_root)

    def _real(self, path: str) -> str:
        return self.root + self.canonicalize(path)

    def stat(self, path: str) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(Path(self._real(path)).stat())
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> Any:
        real = self._real(path)
        try:
            fd = os.open(real, flags, getattr(attr, "st_mode", None) or 0o666)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        handle = _StubSFTPHandle(flags)
        handle.filename = real
        handle.readfile = handle.writefile = os.fdopen(fd, fstr)
        return handle

    def remove(self, path: str) -> int:
        return self._call(os.remove, self._real(path))

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._call(os.rename, self._real(oldpath), self._real(newpath))

    rename = posix_rename

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return self._call(paramiko.SFTPServer.set_file_attr, self._real(path), attr)

    @staticmethod
    def _call(func: Callable[..., Any], *args: Any) -> int:
        try:
            func(*args)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return paramiko.SFTP_OK


class SSHServer:
    """A loopback SSH server; ``connections`` counts accepted TCP connections."""

    def __init__(self, tmp_path: Path) -> None:
        root = tmp_path / "sftproot"
        root.mkdir()
        self.state = ServerState(new_keypair(), new_keypair(), root)
        self.host_key = self.state.host_key.paramiko_key
        self.client_key_file = self.state.client_key.write_private(tmp_path / "id_ed25519")
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    @property
    def sftp_root(self) -> Path:
        return self.state.sftp_root

    @property
    def host_key_line(self) -> str:
        return self.state.host_key.public_line

    @property
    def exec_log(self) -> list[list[str]]:
        return self.state.exec_log

    def _accept_loop(self) -> None:
        while not self.state.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _StubSFTPServer)
            self.state.transports.append(transport)
            # With an event, start_server returns at once instead of raising in this thread
            # when a client gives up during the handshake (wrong host key, bad auth).
            transport.start_server(event=threading.Event(), server=_ExecServer(self.state, transport))

    def drop_connections(self) -> None:
        """Close every server-side connection, as a rebooting guest would."""
        for transport in self.state.transports:
            transport.close()

    def close(self) -> None:
        self.state.stop.set()
        self._accepter.join()
        self._listener.close()
        self.drop_connections()
        for thread in self.state.threads:
            thread.join(timeout=5)


@pytest.fixture
def make_keypair() -> Callable[[], KeyPair]:
    """Factory for fresh ed25519 key pairs (an impostor host key, an unauthorized client key)."""
    return new_keypair


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SSHServer]:
    server = SSHServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def make_transport(ssh_server: SSHServer) -> Iterator[Callable[..., Any]]:
    """Factory for ParamikoTransports aimed at ``ssh_server``; all are closed at teardown."""
    from orchestrator.transport.ssh import ParamikoTransport

    made: list[ParamikoTransport] = []

    def factory(**overrides: Any) -> ParamikoTransport:
        options: dict[str, Any] = {
            "port": ssh_server.port,
            "user": "tester",
            "key_file": ssh_server.client_key_file,
            "host_key": ssh_server.host_key_line,
            "connect_timeout": 5.0,
            "command_timeout": 10.0,
            "key_owner_uid": os.getuid(),
        }
        options.update(overrides)
        transport = ParamikoTransport("127.0.0.1", **options)
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        transport.close()
