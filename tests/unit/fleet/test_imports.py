"""Importing signed bundles: accepted from a trusted key; tampering, replays, unknown keys and expired
bundles each refused with a message that names the reason, and nothing stored."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import FleetError
from orchestrator.fleet.bundle import MAX_BUNDLE_BYTES, seal
from orchestrator.fleet.imports import import_bundle, import_history, imported_counts, imported_steps
from orchestrator.fleet.keys import SigningKey, create_key
from orchestrator.fleet.trust import TrustStore
from orchestrator.state.db import StateDb
from tests.unit.fleet.conftest import COARSE, FINE, MEDIUM, NOW, add_outcome, trust

Bundle = Callable[..., bytes]


@pytest.fixture
def outcomes(exporter_db: StateDb) -> StateDb:
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True)
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=False)
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True, stage="target")
    add_outcome(exporter_db, "gen-unmask-nginx.service", succeeded=True)
    return exporter_db


def _refused(db: StateDb, data: bytes, reason: str, *, now: dt.datetime = NOW) -> FleetError:
    with pytest.raises(FleetError, match=reason) as exc:
        import_bundle(db, data, now=now)
    assert exc.value.message.startswith("bundle refused: ")
    assert exc.value.remedy  # every refusal says what to do
    return exc.value


def _untouched(db: StateDb) -> None:
    assert imported_counts(db) == {}
    assert import_history(db) == []


def test_a_signed_bundle_from_a_trusted_key_is_imported(outcomes: StateDb, importer_db: StateDb,
                                                        key: SigningKey, make_bundle: Bundle) -> None:
    trust(importer_db, key)
    result = import_bundle(importer_db, make_bundle(), now=NOW + dt.timedelta(hours=1))
    assert (result.key_id, result.key_name, result.strategies, result.previous_version) == (
        key.key_id, "web-fleet", 2, None)
    counts = imported_counts(importer_db)
    for level in (FINE, MEDIUM, COARSE):  # each level's id carries the same counts
        assert counts[(level, "nginx-restore-baseline", "vm")] == (1, 2)
        assert counts[(level, "nginx-restore-baseline", "target")] == (1, 1)
        assert counts[(level, "gen-unmask-nginx.service", "vm")] == (1, 1)
    assert (FINE, "nginx-restore-baseline", "reboot") not in counts  # no tries: no row
    assert imported_steps(importer_db) == {
        "gen-unmask-nginx.service": ({"systemctl": {"action": "unmask", "unit": "x.service"}},)}
    [provenance] = import_history(importer_db)
    assert provenance["key_id"] == key.key_id
    assert provenance["bundle_version"] == result.version
    assert provenance["os_release"] == "debian 12 (bookworm)"
    assert provenance["vmrepair_version"]
    assert provenance["strategies"] == 2


def test_one_flipped_byte_in_the_payload_breaks_the_signature(outcomes: StateDb, importer_db: StateDb,
                                                              key: SigningKey, make_bundle: Bundle) -> None:
    trust(importer_db, key)
    envelope = json.loads(make_bundle())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    at = payload.index(b'"vm":[1,2]') + 6  # the 1 of 1 success: now 0 out of 2
    payload[at] ^= 0x01
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    error = _refused(importer_db, json.dumps(envelope).encode(), "signature does not verify")
    assert "altered or damaged" in error.message
    _untouched(importer_db)


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_one_flipped_byte_anywhere_in_the_file_is_refused(outcomes: StateDb, importer_db: StateDb,
                                                          key: SigningKey, make_bundle: Bundle,
                                                          where: str) -> None:
    trust(importer_db, key)
    data = bytearray(make_bundle())
    start = data.index(f'"{where}":"'.encode()) + len(where) + 4
    data[start + 10] = ord("A") if data[start + 10] != ord("A") else ord("B")
    _refused(importer_db, bytes(data), "signature does not verify|malformed envelope|not JSON")
    _untouched(importer_db)


def test_a_replayed_older_bundle_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                            make_bundle: Bundle) -> None:
    trust(importer_db, key)
    older = make_bundle()
    add_outcome(outcomes, "nginx-restore-baseline", succeeded=True)
    newer = make_bundle()
    first = import_bundle(importer_db, newer, now=NOW)
    error = _refused(importer_db, older, "is not newer than version")
    assert "replayed or older bundle" in error.message
    _refused(importer_db, newer, "is not newer than version")  # the same bundle twice: a replay too
    assert imported_counts(importer_db)[(FINE, "nginx-restore-baseline", "vm")] == (2, 3)
    assert [row["bundle_version"] for row in import_history(importer_db)] == [first.version]


def test_a_newer_bundle_replaces_the_keys_counts(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                                 make_bundle: Bundle) -> None:
    trust(importer_db, key)
    first = import_bundle(importer_db, make_bundle(), now=NOW)
    add_outcome(outcomes, "nginx-restore-baseline", succeeded=True)
    second = import_bundle(importer_db, make_bundle(), now=NOW)
    assert second.previous_version == first.version < second.version
    # A snapshot, not an increment: 2 of 3, not 1 of 2 + 2 of 3.
    assert imported_counts(importer_db)[(FINE, "nginx-restore-baseline", "vm")] == (2, 3)


def test_counts_of_two_keys_add_up(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                   make_bundle: Bundle, tmp_path: Path) -> None:
    other = create_key(tmp_path / "other")
    trust(importer_db, key)
    trust(importer_db, other, "db-fleet")
    import_bundle(importer_db, make_bundle(), now=NOW)
    envelope = json.loads(make_bundle())
    body = base64.b64decode(envelope["payload"]).replace(key.key_id.encode(), other.key_id.encode())
    import_bundle(importer_db, seal(body, other.sign(body), other.key_id), now=NOW)
    assert imported_counts(importer_db)[(MEDIUM, "nginx-restore-baseline", "vm")] == (2, 4)
    TrustStore(importer_db).revoke(other.key_id)  # a revoked key's counts stop counting
    assert imported_counts(importer_db)[(MEDIUM, "nginx-restore-baseline", "vm")] == (1, 2)


def test_a_bundle_of_an_unknown_key_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                               make_bundle: Bundle) -> None:
    error = _refused(importer_db, make_bundle(), f"unknown key {key.key_id}")
    assert error.remedy and "vmrepair fleet key trust" in error.remedy
    _untouched(importer_db)


def test_a_bundle_of_a_revoked_key_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                              make_bundle: Bundle) -> None:
    trust(importer_db, key)
    TrustStore(importer_db).revoke(key.key_id)
    _refused(importer_db, make_bundle(), f"key {key.key_id} \\(web-fleet\\) was revoked")
    _untouched(importer_db)


def test_a_bundle_signed_by_another_key_is_refused(outcomes: StateDb, importer_db: StateDb,
                                                   key: SigningKey, make_bundle: Bundle,
                                                   tmp_path: Path) -> None:
    trust(importer_db, key)
    impostor = create_key(tmp_path / "impostor")
    body = base64.b64decode(json.loads(make_bundle())["payload"])
    _refused(importer_db, seal(body, impostor.sign(body), key.key_id), "signature does not verify")
    _untouched(importer_db)


def test_an_expired_bundle_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                      make_bundle: Bundle) -> None:
    trust(importer_db, key)
    data = make_bundle(expires_days=7)
    error = _refused(importer_db, data, "expired at 2026-03-08T12:00:00Z", now=NOW + dt.timedelta(days=8))
    assert error.remedy and "fresh" in error.remedy
    _untouched(importer_db)


def test_an_unknown_format_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                      make_bundle: Bundle) -> None:
    trust(importer_db, key)
    body = base64.b64decode(json.loads(make_bundle())["payload"]).replace(b'"format":1', b'"format":2')
    _refused(importer_db, seal(body, key.sign(body), key.key_id), "unknown format 2")
    _untouched(importer_db)


def test_an_unknown_field_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                     make_bundle: Bundle) -> None:
    trust(importer_db, key)
    body = base64.b64decode(json.loads(make_bundle())["payload"]).replace(b'{"created_at"',
                                                                           b'{"hostname":"web1","created_at"')
    _refused(importer_db, seal(body, key.sign(body), key.key_id), "invalid payload \\(hostname: Extra")
    _untouched(importer_db)


def test_a_payload_naming_another_key_is_refused(outcomes: StateDb, importer_db: StateDb, key: SigningKey,
                                                 make_bundle: Bundle) -> None:
    trust(importer_db, key)
    body = base64.b64decode(json.loads(make_bundle())["payload"]).replace(key.key_id.encode(),
                                                                           b"0123456789abcdef")
    _refused(importer_db, seal(body, key.sign(body), key.key_id), "payload names key 0123456789abcdef")


def test_an_oversized_file_is_refused_before_parsing(importer_db: StateDb) -> None:
    _refused(importer_db, b"{" * (MAX_BUNDLE_BYTES + 1), "too large")


@pytest.mark.parametrize("data", [b"", b"not json", b'{"key_id": "x"}', b'[1, 2]',
                                  b'{"key_id": "0123456789abcdef", "payload": "!!", "signature": ""}'])
def test_a_malformed_envelope_is_refused(importer_db: StateDb, data: bytes) -> None:
    _refused(importer_db, data, "malformed envelope")
