"""The socket's directory and path: created safely, and never replacing what is not ours."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from orchestrator.config.daemon import DaemonSettings
from orchestrator.daemon.socketpath import bind_listener, ensure_socket_dir, remove_socket, socket_path
from orchestrator.errors import DaemonError


def test_socket_path_from_config_or_environment() -> None:
    settings = DaemonSettings()
    assert socket_path(settings, env={}) == Path("/run/vmrepair/api.sock")
    assert socket_path(settings, env={"VMREPAIR_SOCKET": "/tmp/x.sock"}) == Path("/tmp/x.sock")


def test_missing_directory_is_created_private(sock_path: Path) -> None:
    listener = bind_listener(sock_path, backlog=4)
    try:
        mode = stat.S_IMODE(os.lstat(sock_path.parent).st_mode)
        assert mode == 0o700
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        assert stat.S_IMODE(os.lstat(sock_path).st_mode) == 0o600
    finally:
        listener.close()


def test_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(real)
    with pytest.raises(DaemonError) as err:
        ensure_socket_dir(tmp_path / "run")
    run = tmp_path / "run"
    assert err.value.message == f"socket directory {run} is a symlink; refusing to serve through it"
    assert err.value.remedy is not None
    assert "remove the symlink" in err.value.remedy


def test_directory_of_another_owner_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    other = os.geteuid() + 1
    with pytest.raises(DaemonError) as err:
        ensure_socket_dir(directory, owner_uid=other)
    owner = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    assert err.value.message == f"socket directory {directory} is owned by {owner}, not uid {other}"
    assert err.value.remedy is not None
    assert f"chmod 0700 {directory}" in err.value.remedy


def test_group_writable_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(0o770)
    with pytest.raises(DaemonError) as err:
        ensure_socket_dir(directory)
    assert err.value.message == f"socket directory {directory} is writable by group or others (mode 0770)"
    assert err.value.remedy == f"chmod 0700 {directory}"


def test_directory_under_a_missing_parent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DaemonError) as err:
        ensure_socket_dir(tmp_path / "no" / "run")
    assert err.value.message.startswith(f"cannot create the socket directory {tmp_path / 'no' / 'run'}")


def test_regular_file_at_the_socket_path_is_refused_and_kept(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("important")
    with pytest.raises(DaemonError) as err:
        bind_listener(sock_path, backlog=4)
    assert err.value.message == (f"{sock_path} is a regular file; refusing to replace it with the "
                                 "daemon's socket")
    assert sock_path.read_text() == "important"


def test_symlink_at_the_socket_path_is_refused_and_kept(sock_path: Path, tmp_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    sock_path.symlink_to(tmp_path / "elsewhere.sock")
    with pytest.raises(DaemonError) as err:
        bind_listener(sock_path, backlog=4)
    assert err.value.message == f"{sock_path} is a symlink, not the daemon's socket; refusing to replace it"
    assert sock_path.is_symlink()


def test_stale_socket_of_a_dead_daemon_is_replaced(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # bound, never listening, closed: what a killed daemon leaves
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client, \
            pytest.raises(ConnectionRefusedError):
        client.connect(str(sock_path))
    listener = bind_listener(sock_path, backlog=4)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock_path))  # the new socket accepts
    finally:
        listener.close()


def test_socket_of_a_live_daemon_is_refused(sock_path: Path) -> None:
    first = bind_listener(sock_path, backlog=4)
    try:
        with pytest.raises(DaemonError) as err:
            bind_listener(sock_path, backlog=4)
        assert err.value.message == f"another vmrepair daemon is already answering on {sock_path}"
        assert err.value.remedy is not None
        assert "systemctl stop vmrepair" in err.value.remedy
    finally:
        first.close()


def test_remove_socket_leaves_a_replacement_alone(sock_path: Path) -> None:
    listener = bind_listener(sock_path, backlog=4)
    inode = os.lstat(sock_path).st_ino
    listener.close()
    sock_path.unlink()
    sock_path.write_text("someone else's")
    remove_socket(sock_path, inode)
    assert sock_path.read_text() == "someone else's"


def test_too_long_path_names_the_limit(tmp_path: Path) -> None:
    path = tmp_path / ("d" * 60) / ("s" * 60)
    with pytest.raises(DaemonError) as err:
        bind_listener(path, backlog=4)
    assert err.value.message.startswith(f"cannot listen on {path}")
    assert err.value.remedy == "use a path of at most 107 bytes (set VMREPAIR_SOCKET)"
