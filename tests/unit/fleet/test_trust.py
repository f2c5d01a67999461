"""The trust store and the export version counter, in the state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import FleetError
from orchestrator.fleet.keys import create_key
from orchestrator.fleet.trust import TrustStore, next_export_version
from orchestrator.state.db import StateDb


def test_trust_rename_and_revoke(importer_db: StateDb, tmp_path: Path) -> None:
    key = create_key(tmp_path / "k")
    store = TrustStore(importer_db)
    trusted = store.trust(key.public_raw, "web-fleet", pubkey_b64=key.public_b64)
    assert (trusted.key_id, trusted.name, trusted.is_revoked) == (key.key_id, "web-fleet", False)
    assert store.trust(key.public_raw, "db-fleet", pubkey_b64=key.public_b64).name == "db-fleet"
    assert [k.key_id for k in store.all()] == [key.key_id]
    revoked = store.revoke(key.key_id)
    assert revoked.is_revoked and revoked.revoked_at
    assert store.revoke(key.key_id).revoked_at == revoked.revoked_at  # revoking twice changes nothing


def test_a_revoked_key_cannot_be_trusted_again(importer_db: StateDb, tmp_path: Path) -> None:
    key = create_key(tmp_path / "k")
    store = TrustStore(importer_db)
    store.trust(key.public_raw, "web-fleet", pubkey_b64=key.public_b64)
    store.revoke(key.key_id)
    with pytest.raises(FleetError, match="was revoked") as exc:
        store.trust(key.public_raw, "web-fleet", pubkey_b64=key.public_b64)
    assert exc.value.remedy and "new key" in exc.value.remedy


def test_revoking_an_unknown_key_names_it(importer_db: StateDb) -> None:
    with pytest.raises(FleetError, match="no trusted fleet key has id '0123456789abcdef'"):
        TrustStore(importer_db).revoke("0123456789abcdef")


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "\x1b[31mred"])
def test_a_name_must_be_plain(importer_db: StateDb, tmp_path: Path, name: str) -> None:
    key = create_key(tmp_path / "k")
    with pytest.raises(FleetError, match="not a plain name"):
        TrustStore(importer_db).trust(key.public_raw, name, pubkey_b64=key.public_b64)
    assert TrustStore(importer_db).all() == []


def test_export_versions_only_grow(importer_db: StateDb) -> None:
    versions = [next_export_version(importer_db, "0123456789abcdef") for _ in range(3)]
    assert versions == sorted(set(versions))
    assert versions[0] > 1_700_000_000  # at least the Unix time: survives a lost state store
    assert next_export_version(importer_db, "fedcba9876543210") >= versions[0]
