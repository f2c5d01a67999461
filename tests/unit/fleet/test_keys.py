"""The fleet signing key: created 0600 and crash-safely, refused when unsafe, named by its key id."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orchestrator.errors import FleetError
from orchestrator.fleet.keys import (
    create_key,
    decode_public,
    is_valid_signature,
    key_path,
    load_key,
    parse_public_line,
)


def test_create_then_load_gives_the_same_key(tmp_path: Path) -> None:
    path = key_path(tmp_path / "state")
    created = create_key(path)
    loaded = load_key(path)
    assert loaded.public_raw == created.public_raw
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert created.key_id == hashlib.sha256(created.public_raw).hexdigest()[:16]
    assert [p.name for p in path.parent.iterdir()] == ["signing_key"]  # no temp file left behind


def test_a_signature_verifies_with_its_key_only(tmp_path: Path) -> None:
    key = create_key(tmp_path / "a")
    other = create_key(tmp_path / "b")
    signature = key.sign(b"payload")
    assert is_valid_signature(key.public_raw, b"payload", signature)
    assert not is_valid_signature(key.public_raw, b"payloaD", signature)
    assert not is_valid_signature(other.public_raw, b"payload", signature)
    assert not is_valid_signature(key.public_raw, b"payload", b"short")


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = create_key(path)
    with pytest.raises(FleetError, match="already exists") as exc:
        create_key(path)
    assert exc.value.remedy and "rotate" in exc.value.remedy
    assert load_key(path).public_raw == first.public_raw


def test_a_missing_key_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="no fleet signing key") as exc:
        load_key(tmp_path / "none")
    assert exc.value.remedy and "vmrepair fleet key create" in exc.value.remedy


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_key(path)
    path.chmod(0o640)
    with pytest.raises(FleetError, match="mode 640"):
        load_key(path)


def test_a_symlinked_or_garbage_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    create_key(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(FleetError, match="not a regular file"):
        load_key(link)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(FleetError, match="not a PEM private key"):
        load_key(garbage)


def test_public_line_round_trips(tmp_path: Path) -> None:
    key = create_key(tmp_path / "k")
    raw, name = parse_public_line(key.public_line("web-fleet") + "\n")
    assert (raw, name) == (key.public_raw, "web-fleet")
    assert decode_public(key.public_b64) == key.public_raw


@pytest.mark.parametrize("text", ["ssh-ed25519 AAAA x", "vmrepair-fleet-ed25519", "", "AAAA"])
def test_not_a_public_line_is_refused(text: str) -> None:
    with pytest.raises(FleetError, match="not a fleet public key"):
        parse_public_line(text)


@pytest.mark.parametrize("text", ["AAAA", "not base64!", "QUFB" * 20])
def test_a_public_key_must_be_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(FleetError, match="base64 of 32 bytes"):
        decode_public(text)
