"""The fleet signing key: one Ed25519 key pair per host, whose private half never leaves the state dir.

The private key is ``<state_dir>/fleet/signing_key`` (PKCS#8 PEM, mode 0600, owned by the user
vmrepair runs as, root in production), written crash-safely. A key is named by its *key id*: the first
16 hex digits of the SHA-256 of the raw 32-byte public key. Public keys travel as one line
``vmrepair-fleet-ed25519 <base64 raw key> <name>`` (what ``fleet key show`` prints and
``fleet key trust FILE`` reads).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orchestrator.errors import FleetError
from orchestrator.fsutil import atomic_write, ensure_private_dir

KEY_FILE_NAME = "signing_key"
PUBLIC_LINE_TAG = "vmrepair-fleet-ed25519"
RAW_KEY_BYTES = 32
KEY_ID_HEX = 16
#: A public key file is one short line; anything much longer is not one.
MAX_PUBLIC_FILE_BYTES = 4096
_CREATE = "create one with `vmrepair fleet key create`"


@dataclass(frozen=True)
class SigningKey:
    """This host's key pair, loaded."""

    private: Ed25519PrivateKey
    public_raw: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def public_line(self, name: str) -> str:
        return f"{PUBLIC_LINE_TAG} {self.public_b64} {name}".rstrip()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:KEY_ID_HEX]


def key_path(state_dir: Path) -> Path:
    return state_dir / "fleet" / KEY_FILE_NAME


def create_key(path: Path) -> SigningKey:
    """Generate a key pair and write its private half to ``path`` (0600, crash-safe).

    Raises:
        FleetError: a key already exists there (replacing it would orphan every host that trusts it).
        StateError: the directory or file cannot be written.
    """
    if path.exists() or path.is_symlink():
        raise FleetError(f"a fleet signing key already exists at {path}; refusing to replace it",
                         remedy="see it with `vmrepair fleet key show`; to rotate, move the file aside "
                                "and have every importing host trust the new key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    ensure_private_dir(path.parent)
    atomic_write(path, pem, mode=0o600)
    return _signing_key(private)


def load_key(path: Path) -> SigningKey:
    """This host's signing key.

    Raises:
        FleetError: no key; the file is not a regular file, is readable by others or belongs to
            another user; or it holds no Ed25519 private key.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise FleetError(f"no fleet signing key at {path}", remedy=_CREATE) from None
    except OSError as exc:
        raise FleetError(f"cannot read fleet signing key {path}: {exc.strerror}",
                         remedy="run as root or as the user that owns the state dir") from exc
    if not stat.S_ISREG(info.st_mode):
        raise FleetError(f"fleet signing key {path} is not a regular file; refusing to use it",
                         remedy=f"remove {path} and {_CREATE}")
    if info.st_mode & 0o077 or info.st_uid != os.geteuid():
        # Someone else could have read (or swapped) the key: whatever it signs proves nothing.
        raise FleetError(f"fleet signing key {path} has mode {stat.S_IMODE(info.st_mode):o} and owner uid "
                         f"{info.st_uid}; it must be 0600 and owned by uid {os.geteuid()}",
                         remedy=f"chown {os.geteuid()} {path} && chmod 600 {path}, or, if others may "
                                "have read it, revoke it everywhere and create a new one")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise FleetError(f"fleet signing key {path} is unreadable or not a PEM private key: {exc}",
                         remedy=f"move {path} aside and {_CREATE}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise FleetError(f"fleet signing key {path} is not an Ed25519 key",
                         remedy=f"move {path} aside and {_CREATE}")
    return _signing_key(private)


def _signing_key(private: Ed25519PrivateKey) -> SigningKey:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(private, raw)


def decode_public(text: str) -> bytes:
    """A raw public key from its base64 form.

    Raises:
        FleetError: not base64 of exactly 32 bytes.
    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != RAW_KEY_BYTES:
        raise FleetError(f"{text.strip()[:60]!r} is not a fleet public key (base64 of 32 bytes)",
                         remedy="copy the key from `vmrepair fleet key show` on the exporting host")
    return raw


def parse_public_line(text: str) -> tuple[bytes, str]:
    """(raw public key, name) from a ``vmrepair-fleet-ed25519 <b64> [name]`` line.

    Raises:
        FleetError: the text is not such a line.
    """
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] != PUBLIC_LINE_TAG:
        raise FleetError(f"not a fleet public key line (expected `{PUBLIC_LINE_TAG} <base64> <name>`)",
                         remedy="use the output of `vmrepair fleet key show` on the exporting host")
    return decode_public(parts[1]), parts[2].strip() if len(parts) == 3 else ""


def is_valid_signature(public_raw: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
