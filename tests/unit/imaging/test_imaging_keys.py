"""SSH key material: generated keys load, fingerprints match OpenSSH, unsafe key files are refused."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.errors import KeyFileError
from orchestrator.imaging.keys import (
    check_private_key_file,
    ensure_client_key,
    fingerprint,
    generate_ed25519,
    read_public_key,
)


def _write_key(path: Path, mode: int = 0o600) -> Path:
    private, _ = generate_ed25519("test")
    path.write_bytes(private)
    path.chmod(mode)
    return path


def test_generated_private_key_loads_and_matches_public_line() -> None:
    private, public = generate_ed25519("vmrepair-test")
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    key = serialization.load_ssh_private_key(private, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    derived = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    assert public == f"{derived} vmrepair-test"
    assert public.startswith("ssh-ed25519 AAAA")


def test_generated_keys_differ() -> None:
    assert generate_ed25519("a")[1].split()[1] != generate_ed25519("a")[1].split()[1]


def test_fingerprint_matches_openssh_format() -> None:
    _, public = generate_ed25519("c")
    blob = base64.b64decode(public.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(public) == expected
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint(public))


def test_fingerprint_ignores_comment() -> None:
    _, public = generate_ed25519("one")
    assert fingerprint(public) == fingerprint(public.rsplit(" ", 1)[0] + " two words")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) missing")
def test_fingerprint_agrees_with_ssh_keygen(tmp_path: Path) -> None:
    _, public = generate_ed25519("c")
    pub = tmp_path / "k.pub"
    pub.write_text(public + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[1] == fingerprint(public)


def test_fingerprint_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        fingerprint("ssh-ed25519")


def test_safe_key_file_passes(tmp_path: Path) -> None:
    check_private_key_file(_write_key(tmp_path / "id"), owner_uid=os.getuid())


def test_group_readable_key_is_refused_with_remedy(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "id", mode=0o644)
    with pytest.raises(KeyFileError) as info:
        check_private_key_file(key, owner_uid=os.getuid())
    assert info.value.message == (
        f"unsafe key file {key}: mode 0644 is accessible to group/others"
    )
    assert info.value.remedy == f"chown {os.getuid()} {key} && chmod 600 {key}"


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "id")
    link = tmp_path / "link"
    link.symlink_to(key)
    with pytest.raises(KeyFileError, match=re.escape(f"unsafe key file {link}: not a regular file")) as info:
        check_private_key_file(link, owner_uid=os.getuid())
    assert info.value.remedy is not None
    assert "chmod 600" in info.value.remedy


def test_key_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "id")
    expected = os.getuid() + 1
    with pytest.raises(KeyFileError) as info:
        check_private_key_file(key, owner_uid=expected)
    assert f"owned by uid {os.getuid()}, expected {expected}" in info.value.message
    assert info.value.remedy == f"chown {expected} {key} && chmod 600 {key}"


def test_every_problem_is_listed(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "id", mode=0o640)
    with pytest.raises(KeyFileError) as info:
        check_private_key_file(key, owner_uid=os.getuid() + 1)
    assert "owned by uid" in info.value.message
    assert "mode 0640" in info.value.message


def test_missing_key_names_the_command_that_creates_it(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        check_private_key_file(tmp_path / "absent")
    assert info.value.message == f"key file {tmp_path / 'absent'} does not exist"
    assert info.value.remedy == "run `vmrepair image build` to create it"


def test_ensure_client_key_creates_a_private_pair(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "id_ed25519"
    public = ensure_client_key(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    pub = key.with_name("id_ed25519.pub")
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert pub.read_text() == public + "\n"
    assert public.endswith(" vmrepair-orchestrator")
    assert read_public_key(key) == public
    check_private_key_file(key, owner_uid=os.getuid())


def test_ensure_client_key_is_idempotent(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    public = ensure_client_key(key)
    private = key.read_bytes()
    assert ensure_client_key(key) == public
    assert key.read_bytes() == private


def test_ensure_client_key_rederives_missing_public_half(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    public = ensure_client_key(key)
    private = key.read_bytes()
    key.with_name("id_ed25519.pub").unlink()
    assert ensure_client_key(key) == public
    assert key.read_bytes() == private  # the key images already trust is never replaced
    assert read_public_key(key) == public


def test_ensure_client_key_refuses_unsafe_existing_key(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    ensure_client_key(key)
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match="mode 0644"):
        ensure_client_key(key)


def test_read_public_key_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        read_public_key(tmp_path / "id")
    assert info.value.message == f"public key {tmp_path / 'id.pub'} is missing"
    assert info.value.remedy is not None
    assert "vmrepair image build" in info.value.remedy
