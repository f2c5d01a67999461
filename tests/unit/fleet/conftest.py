"""Fixtures of the fleet bundle tests: a state store whose ``outcomes`` carry fault signatures, and
signing keys on a temporary state dir."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.fleet.export import StrategyInfo, export_bundle
from orchestrator.fleet.keys import SigningKey, create_key
from orchestrator.fleet.trust import TrustStore
from orchestrator.state.db import StateDb, open_state

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
FINE, MEDIUM, COARSE = "f1" * 8, "e2" * 8, "c3" * 8
SIGNATURE_COLUMNS = ("signature_fine", "signature_medium", "signature_coarse")


def with_signature_columns(db: StateDb) -> StateDb:
    """The signature columns the fault-signature branch adds to ``outcomes``; added here only when this
    branch's schema lacks them (the integrator reconciles the migrations)."""
    present = {row["name"] for row in db.query("PRAGMA table_info(outcomes)")}
    with db.write() as tx:
        for column in SIGNATURE_COLUMNS:
            if column not in present:
                tx.execute(f"ALTER TABLE outcomes ADD COLUMN {column} TEXT")
    return db


def add_outcome(db: StateDb, strategy: str, *, succeeded: bool, stage: str = "vm", target: str = "local",
                at: str = "2026-02-20T10:00:00Z", signature: tuple[str, str, str] = (FINE, MEDIUM, COARSE)
                ) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO outcomes (strategy, succeeded, stage, target, at, signature_fine,"
                   " signature_medium, signature_coarse) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (strategy, int(succeeded), stage, target, at, *signature))


@pytest.fixture
def exporter_db(tmp_path: Path) -> Iterator[StateDb]:
    db = with_signature_columns(open_state(tmp_path / "exporter" / "state.db"))
    yield db
    db.close()


@pytest.fixture
def importer_db(tmp_path: Path) -> Iterator[StateDb]:
    db = open_state(tmp_path / "importer" / "state.db")
    yield db
    db.close()


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return create_key(tmp_path / "exporter" / "fleet" / "signing_key")


def describe(name: str) -> StrategyInfo | None:
    """nginx strategies are shipped; ``gen-*`` ones are generated with their steps; others unknown."""
    if name.startswith("nginx-"):
        return StrategyInfo("nginx")
    if name.startswith("gen-"):
        return StrategyInfo("generated:systemd", ({"systemctl": {"action": "unmask", "unit": "x.service"}},))
    return None


@pytest.fixture
def make_bundle(exporter_db: StateDb, key: SigningKey) -> Callable[..., bytes]:
    """A bundle of ``exporter_db``'s outcomes signed with ``key`` (made at ``now``, default NOW)."""

    def factory(*, now: dt.datetime = NOW, expires_days: float = 30) -> bytes:
        return export_bundle(exporter_db, key, since=None, expires=dt.timedelta(days=expires_days),
                             os_release="debian 12 (bookworm)", describe=describe, now=now).data

    return factory


def trust(db: StateDb, key: SigningKey, name: str = "web-fleet") -> None:
    TrustStore(db).trust(key.public_raw, name, pubkey_b64=key.public_b64)
