"""Where the API socket lives, and the checks that make binding it safe.

The socket's directory is the real access boundary: it is created 0700 and must not be a symlink, must
belong to the daemon's user (root in production) and must not be writable by group or others, or
another user could swap the socket for their own and read what clients send. A path already at the
socket's location is replaced only when it is a socket nobody answers on (a daemon that crashed); a
live daemon, a regular file or a symlink there is refused, never deleted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Mapping
from pathlib import Path

from orchestrator.config.daemon import DaemonSettings
from orchestrator.errors import DaemonError

SOCKET_ENV = "VMREPAIR_SOCKET"
#: How long the stale-socket probe waits for a daemon to accept.
PROBE_TIMEOUT_S = 1.0
#: sun_path holds 108 bytes on Linux, one of them the terminating NUL.
MAX_PATH_BYTES = 107


def socket_path(settings: DaemonSettings, env: Mapping[str, str] | None = None) -> Path:
    """The API socket: ``$VMREPAIR_SOCKET`` if set, else ``daemon.socket`` from the config."""
    env = os.environ if env is None else env
    override = env.get(SOCKET_ENV, "")
    return Path(override) if override else settings.socket


def _owner_name(uid: int) -> str:
    return "root" if uid == 0 else f"uid {uid}"


def ensure_socket_dir(directory: Path, *, owner_uid: int | None = None) -> None:
    """Create ``directory`` 0700 if missing (its parent must exist), then check it.

    Raises:
        DaemonError: it cannot be created, or it is a symlink, not a directory, not owned by
            ``owner_uid`` (default: our effective uid), or writable by group or others.
    """
    owner = os.geteuid() if owner_uid is None else owner_uid
    who = _owner_name(owner)
    remedy = (f"remove it and let the daemon create it, or "
              f"`chown {owner} {directory} && chmod 0700 {directory}`")
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DaemonError(f"cannot create the socket directory {directory}: {exc.strerror}",
                          remedy="create its parent, or set VMREPAIR_SOCKET to a path under one") from exc
    try:
        st = os.lstat(directory)
    except OSError as exc:
        raise DaemonError(f"cannot inspect the socket directory {directory}: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise DaemonError(f"socket directory {directory} is a symlink; refusing to serve through it",
                          remedy=f"remove the symlink; the daemon creates {directory} itself (0700, {who})")
    if not stat.S_ISDIR(st.st_mode):
        raise DaemonError(f"socket directory {directory} is not a directory", remedy=remedy)
    if st.st_uid != owner:
        raise DaemonError(f"socket directory {directory} is owned by {_owner_name(st.st_uid)}, not {who}",
                          remedy=remedy)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DaemonError(f"socket directory {directory} is writable by group or others "
                          f"(mode {stat.S_IMODE(st.st_mode):04o})", remedy=f"chmod 0700 {directory}")


def is_answering(path: Path, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a process accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True  # a backlog that is full is still somebody's socket
    return True


def clear_stale_socket(path: Path) -> None:
    """Remove ``path`` if it is a socket that no daemon answers on; leave nothing else alone.

    Raises:
        DaemonError: ``path`` is a symlink, a regular file or anything but a socket, or a daemon
            answers on it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise DaemonError(f"{path} is a symlink, not the daemon's socket; refusing to replace it",
                          remedy=f"remove {path} yourself if it is not needed, or set {SOCKET_ENV}")
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a socket"
        raise DaemonError(f"{path} is {kind}; refusing to replace it with the daemon's socket",
                          remedy=f"remove {path} yourself if it is not needed, or set {SOCKET_ENV}")
    if is_answering(path):
        raise DaemonError(f"another vmrepair daemon is already answering on {path}",
                          remedy=f"stop it (`systemctl stop vmrepair`) or set {SOCKET_ENV} to another path")
    path.unlink()


def bind_listener(path: Path, *, backlog: int, mode: int = 0o600) -> socket.socket:
    """A listening unix socket at ``path``, after the directory and stale-socket checks.

    Raises:
        DaemonError: as :func:`ensure_socket_dir` and :func:`clear_stale_socket`, or binding failed.
    """
    ensure_socket_dir(path.parent)
    clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(path))
        # The directory (0700) already keeps others out; the mode matters when allowed_uids grants
        # other users access to the directory.
        path.chmod(mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        hint = (f"use a path of at most {MAX_PATH_BYTES} bytes (set {SOCKET_ENV})"
                if len(os.fsencode(path)) > MAX_PATH_BYTES else None)
        raise DaemonError(f"cannot listen on {path}: {exc.strerror or exc}", remedy=hint) from exc
    return sock


def remove_socket(path: Path, inode: int) -> None:
    """Unlink ``path`` on a clean stop if it is still the socket we bound: a socket with our inode
    (an inode number alone can be reused by a file created after ours was removed)."""
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and st.st_ino == inode:
            path.unlink()


def socket_mode(settings: DaemonSettings) -> int:
    """0666 when ``allowed_uids`` lets other users in (the 0700 directory and the uid check still
    keep everyone else out), else 0600."""
    return 0o666 if settings.allowed_uids else 0o600


def set_socket_mode(path: Path, inode: int, mode: int) -> None:
    """chmod ``path`` if it is still the socket we bound (see :func:`remove_socket`).

    Raises:
        OSError: it cannot be changed.
    """
    st = os.lstat(path)
    if stat.S_ISSOCK(st.st_mode) and st.st_ino == inode:
        path.chmod(mode)
