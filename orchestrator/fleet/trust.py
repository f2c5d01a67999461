"""The trust store: which public keys' bundles this host imports (table ``fleet_keys``).

A key is trusted by its raw public key and a name the operator chooses; it is revoked by key id and
stays in the table, marked, so a revoked key can never be trusted again by accident (a key that may
have leaked needs a new key, hence a new id). Also here: the version counter of this host's own
exports (table ``fleet_exports``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import FleetError, StateError
from orchestrator.fleet.keys import KEY_ID_HEX, key_id
from orchestrator.state.db import StateDb
from orchestrator.timestamps import now_timestamp

KEY_ID_RE = re.compile(rf"^[0-9a-f]{{{KEY_ID_HEX}}}$")
#: Names are shown in tables and messages: printable, short.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,63}$")


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    name: str
    pubkey: str
    trusted_at: str
    revoked_at: str | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class TrustStore:
    """Raises (every method): StateError / StateCorruptError from the store, and FleetError as named."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def trust(self, public_raw: bytes, name: str, *, pubkey_b64: str) -> TrustedKey:
        """Trust ``public_raw`` under ``name``; trusting a key already trusted renames it.

        Raises:
            FleetError: ``name`` is not a plain name, or the key was revoked.
        """
        if not NAME_RE.fullmatch(name):
            raise FleetError(f"key name {name[:80]!r} is not a plain name "
                             "(letters, digits and _.@:+-, at most 64)",
                             remedy="pass --name with a plain name, e.g. --name web-fleet-1")
        kid = key_id(public_raw)
        existing = self.get(kid)
        if existing is not None and existing.is_revoked:
            raise FleetError(f"key {kid} ({existing.name}) was revoked at {existing.revoked_at}; "
                             "refusing to trust it again",
                             remedy="have its owner create a new key and trust that one")
        with self.db.write() as tx:
            tx.execute("INSERT INTO fleet_keys (key_id, name, pubkey, trusted_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT(key_id) DO UPDATE SET name = excluded.name",
                       (kid, name, pubkey_b64, now_timestamp()))
        return self._require(kid)

    def revoke(self, kid: str) -> TrustedKey:
        """Revoke ``kid``: its bundles are refused from now on (counts already imported from it are
        dropped too, see :func:`orchestrator.fleet.imports.forget_key`).

        Raises:
            FleetError: no trusted key has that id.
        """
        existing = self.get(kid)
        if existing is None:
            raise FleetError(f"no trusted fleet key has id {kid[:40]!r}",
                             remedy="see the trusted keys with `vmrepair fleet key show --trusted`")
        if not existing.is_revoked:
            with self.db.write() as tx:
                tx.execute("UPDATE fleet_keys SET revoked_at = ? WHERE key_id = ?", (now_timestamp(), kid))
                tx.execute("DELETE FROM imported_outcomes WHERE key_id = ?", (kid,))
        return self._require(kid)

    def get(self, kid: str) -> TrustedKey | None:
        rows = self.db.query("SELECT key_id, name, pubkey, trusted_at, revoked_at FROM fleet_keys"
                             " WHERE key_id = ?", (kid,))
        return TrustedKey(**dict(rows[0])) if rows else None

    def _require(self, kid: str) -> TrustedKey:
        found = self.get(kid)
        if found is None:  # written a moment ago in the same store: only a concurrent delete
            raise StateError(f"fleet key {kid} vanished from {self.db.path} while being written")
        return found

    def all(self) -> list[TrustedKey]:
        rows = self.db.query("SELECT key_id, name, pubkey, trusted_at, revoked_at FROM fleet_keys"
                             " ORDER BY trusted_at, key_id")
        return [TrustedKey(**dict(row)) for row in rows]


def next_export_version(db: StateDb, kid: str) -> int:
    """The version of the next bundle exported with key ``kid``, recorded before it is used.

    Versions only grow: one more than the last recorded, and at least the current Unix time, so a
    host whose state store was lost (but whose key survived) still exports versions its importers
    take as newer instead of refusing them as replays.
    """
    with db.write() as tx:
        row = tx.execute("SELECT last_version FROM fleet_exports WHERE key_id = ?", (kid,)).fetchone()
        version = max(int(row[0]) + 1 if row else 1, int(time.time()))
        tx.execute("INSERT INTO fleet_exports (key_id, last_version, exported_at) VALUES (?, ?, ?)"
                   " ON CONFLICT(key_id) DO UPDATE SET last_version = excluded.last_version,"
                   " exported_at = excluded.exported_at", (kid, version, now_timestamp()))
    return version
