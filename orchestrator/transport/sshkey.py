"""Load an SSH private key only when the file is safe: a regular file private to its expected owner.

Used for ``targets.ssh_key``, the orchestrator's client key, and an ``IdentityFile`` taken from ssh
config alike, so a key named in any of them passes the same checks.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import paramiko

from orchestrator.errors import KeyFileError

_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(path: Path, *, owner_uid: int, host: str) -> paramiko.PKey:
    """The unencrypted ed25519, ECDSA or RSA key in ``path``; ``host`` only names the connection in
    messages.

    Raises:
        KeyFileError: the file is missing, a symlink, not a regular file, readable or writable by
            others, not owned by ``owner_uid``, passphrase-protected or not such a key.
    """
    owner = owner_uid
    remedy = f"chmod 600 {path}; chown {'root' if owner == 0 else owner} {path}"
    try:
        # O_NOFOLLOW: checking a symlink's target and then reading another file is a race.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        what = "is a symlink" if exc.errno == errno.ELOOP else f"cannot be opened: {exc}"
        raise KeyFileError(
            f"{host}: SSH key file {path} {what}",
            host=host,
            remedy=f"point key_file at the real key file, then: {remedy}",
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        mode = stat.S_IMODE(st.st_mode)
        # Anyone else who can read (or swap) the key can log in to every guest as root.
        if not stat.S_ISREG(st.st_mode) or st.st_uid != owner or mode & 0o077:
            raise KeyFileError(
                f"{host}: SSH key file {path} is unsafe: "
                f"{'mode' if stat.S_ISREG(st.st_mode) else 'not a regular file, mode'}"
                f" {mode:04o}, owner uid {st.st_uid} (needs a regular file with mode 0600 or"
                f" 0400 owned by uid {owner})",
                host=host,
                remedy=remedy,
            )
        text = handle.read().decode("utf-8", errors="replace")
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException as exc:
            raise KeyFileError(
                f"{host}: SSH key file {path} is passphrase-protected",
                host=host,
                remedy="use an unencrypted key protected by file permissions (vmrepair runs"
                " unattended)",
            ) from exc
        except (paramiko.SSHException, ValueError):
            continue
    raise KeyFileError(
        f"{host}: SSH key file {path} is not an ed25519, ECDSA or RSA private key",
        host=host,
        remedy=f"generate one: ssh-keygen -t ed25519 -N '' -f {path}",
    )
