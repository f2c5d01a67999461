"""SSH key material: the orchestrator's client key pair and per-image guest host keys.

Generated with ``cryptography`` (paramiko cannot generate Ed25519 keys), written 0600 root.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.errors import KeyFileError
from orchestrator.fsutil import atomic_write, ensure_private_dir


def generate_ed25519(comment: str) -> tuple[bytes, str]:
    """Return (private key in OpenSSH PEM format, public key line ``ssh-ed25519 AAAA... comment``)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"


def fingerprint(public_line: str) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key line."""
    parts = public_line.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key line")
    blob = base64.b64decode(parts[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_private_key_file(path: Path, *, owner_uid: int = 0) -> None:
    """Refuse a key file that is missing, a symlink, not owned by ``owner_uid`` or group/world-accessible.

    Raises:
        KeyFileError: with the actual state and the remedy.
    """
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"key file {path} does not exist", remedy="run `vmrepair image build` to create it"
        ) from exc
    problems = []
    if path.is_symlink() or not path.is_file():
        problems.append("not a regular file")
    if info.st_uid != owner_uid:
        problems.append(f"owned by uid {info.st_uid}, expected {owner_uid}")
    if info.st_mode & 0o077:
        problems.append(f"mode {info.st_mode & 0o777:04o} is accessible to group/others")
    if problems:
        raise KeyFileError(
            f"unsafe key file {path}: {'; '.join(problems)}",
            remedy=f"chown {owner_uid} {path} && chmod 600 {path}",
        )


def ensure_client_key(path: Path) -> str:
    """Create the orchestrator's client key pair if missing; return the public key line.

    Raises:
        KeyFileError: an existing key file has unsafe permissions.
        StateError: the key directory cannot be written.
    """
    ensure_private_dir(path.parent)
    pub = path.with_name(path.name + ".pub")
    if path.exists():
        check_private_key_file(path, owner_uid=os.getuid())
        if pub.exists():
            return pub.read_text().strip()
        # Never replace an existing private key: images already trust it. Re-derive the public half.
        loaded = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        public_bytes = loaded.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        public = f"{public_bytes.decode()} vmrepair-orchestrator"
        atomic_write(pub, (public + "\n").encode(), mode=0o644)
        return public
    private, public = generate_ed25519("vmrepair-orchestrator")
    atomic_write(path, private, mode=0o600)
    atomic_write(pub, (public + "\n").encode(), mode=0o644)
    return public


def read_public_key(path: Path) -> str:
    pub = path.with_name(path.name + ".pub")
    try:
        return pub.read_text().strip()
    except OSError as exc:
        raise KeyFileError(
            f"public key {pub} is missing", remedy="run `vmrepair image build` to create the key pair"
        ) from exc
