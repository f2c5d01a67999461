"""Importing: a signed bundle's counts, accepted only from a trusted key, fresh and newer than the last.

Checks, in order (the first that fails names itself in a :class:`FleetError`, nothing is stored):
size and envelope; key trusted and not revoked; signature; format and fields; the payload's key id
matches the envelope's; not expired; version newer than the last imported from that key (a replayed
older bundle would roll the counts back). An accepted bundle *replaces* its key's previous counts
(each bundle is a snapshot, not an increment) and leaves a provenance row in ``fleet_imports``.

Imported counts only steer ranking. A shared strategy (imported steps included) still has to pass
validation in this host's own troubleshooting VM before anything reaches a target.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import FleetError
from orchestrator.fleet.bundle import STAGES, BundlePayload, open_envelope, parse_payload
from orchestrator.fleet.keys import decode_public, is_valid_signature
from orchestrator.fleet.trust import TrustStore
from orchestrator.state.db import StateDb
from orchestrator.timestamps import format_timestamp, parse_timestamp

#: (signature id of any level, strategy, stage) -> (successes, tries), summed over trusted keys.
CountKey = tuple[str, str, str]


@dataclass(frozen=True)
class ImportResult:
    key_id: str
    key_name: str
    version: int
    previous_version: int | None
    strategies: int
    payload: BundlePayload

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "key_name": self.key_name, "version": self.version,
                "previous_version": self.previous_version, "strategies": self.strategies,
                "created_at": self.payload.created_at, "expires_at": self.payload.expires_at,
                "vmrepair_version": self.payload.vmrepair_version, "os_release": self.payload.os_release,
                "window": {"from": self.payload.window.from_, "to": self.payload.window.to}}


def verify_bundle(db: StateDb, data: bytes, *, now: dt.datetime) -> tuple[BundlePayload, str]:
    """The verified payload and its key's name (no version check: that one needs the write lock).

    Raises:
        FleetError: the first check that fails, by name.
        StateError / StateCorruptError: from the store.
    """
    envelope, body, signature = open_envelope(data)
    trusted = TrustStore(db).get(envelope.key_id)
    if trusted is None:
        raise FleetError(f"bundle refused: unknown key {envelope.key_id} (not in this host's trust store)",
                         remedy="if you trust its exporter, run `vmrepair fleet key trust` with the key "
                                "`vmrepair fleet key show` prints there")
    if trusted.is_revoked:
        raise FleetError(f"bundle refused: key {trusted.key_id} ({trusted.name}) was revoked at "
                         f"{trusted.revoked_at}", remedy="import bundles signed by a key you trust")
    if not is_valid_signature(decode_public(trusted.pubkey), body, signature):
        raise FleetError(f"bundle refused: signature does not verify with key {trusted.key_id} "
                         f"({trusted.name}); the bundle was altered or damaged",
                         remedy="fetch the bundle again from its exporter; do not edit bundle files")
    payload = parse_payload(body)
    if payload.key_id != envelope.key_id:
        raise FleetError(f"bundle refused: payload names key {payload.key_id}, envelope {envelope.key_id}",
                         remedy="the bundle was not produced by `vmrepair fleet export`; export it again")
    expires = parse_timestamp(payload.expires_at)
    if expires is None or expires <= now:
        raise FleetError(f"bundle refused: expired at {payload.expires_at} (now {format_timestamp(now)})",
                         remedy="ask its exporter for a fresh `vmrepair fleet export`")
    return payload, trusted.name


def import_bundle(db: StateDb, data: bytes, *, now: dt.datetime | None = None) -> ImportResult:
    """Verify ``data`` and store its counts in place of its key's previous ones.

    Raises:
        FleetError: as :func:`verify_bundle`, or the version is not newer than the last imported.
        StateError / StateCorruptError: from the store.
    """
    now = now or dt.datetime.now(dt.UTC)
    payload, name = verify_bundle(db, data, now=now)
    kid = payload.key_id
    with db.write() as tx:
        # Checked inside the write transaction: two imports racing cannot both pass it.
        previous = tx.execute("SELECT MAX(bundle_version) FROM fleet_imports WHERE key_id = ?",
                              (kid,)).fetchone()[0]
        if previous is not None and payload.version <= int(previous):
            raise FleetError(f"bundle refused: version {payload.version} of key {kid} ({name}) is not newer "
                             f"than version {previous}, imported before (a replayed or older bundle)",
                             remedy="import the exporter's newest bundle")
        tx.execute("DELETE FROM imported_outcomes WHERE key_id = ?", (kid,))
        for item in payload.strategies:
            steps = "" if item.steps is None else json.dumps(list(item.steps), sort_keys=True)
            for stage in STAGES:
                successes, tries = getattr(item.stages, stage)
                if tries == 0:
                    continue
                tx.execute("INSERT INTO imported_outcomes (key_id, signature_fine, signature_medium,"
                           " signature_coarse, strategy, playbook, stage, successes, tries, bundle_version,"
                           " steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (kid, item.signature.fine, item.signature.medium, item.signature.coarse,
                            item.strategy, item.playbook, stage, successes, tries, payload.version, steps))
        tx.execute("INSERT INTO fleet_imports (key_id, bundle_version, imported_at, created_at, expires_at,"
                   " vmrepair_version, os_release, window_from, window_to, strategies, sha256)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (kid, payload.version, format_timestamp(now), payload.created_at, payload.expires_at,
                    payload.vmrepair_version, payload.os_release, payload.window.from_, payload.window.to,
                    len(payload.strategies), hashlib.sha256(data).hexdigest()))
    return ImportResult(kid, name, payload.version, None if previous is None else int(previous),
                        len(payload.strategies), payload)


def imported_counts(db: StateDb) -> dict[CountKey, tuple[int, int]]:
    """Imported (successes, tries) per (signature id, strategy, stage), summed over the trusted,
    unrevoked keys; each row counts under its fine, medium and coarse id alike, so the ranking
    adds them at whichever level it matches.

    Raises:
        StateError / StateCorruptError: from the store.
    """
    rows = db.query("SELECT o.signature_fine, o.signature_medium, o.signature_coarse, o.strategy, o.stage,"
                    " o.successes, o.tries FROM imported_outcomes o JOIN fleet_keys k"
                    " ON k.key_id = o.key_id WHERE k.revoked_at IS NULL")
    counts: dict[CountKey, tuple[int, int]] = {}
    for row in rows:
        for level_id in {row[0], row[1], row[2]}:
            key = (str(level_id), str(row[3]), str(row[4]))
            succ, tries = counts.get(key, (0, 0))
            counts[key] = (succ + int(row[5]), tries + int(row[6]))
    return counts


def imported_steps(db: StateDb) -> dict[str, tuple[dict[str, Any], ...]]:
    """Playbook-form steps of generated strategies that trusted keys shared, by strategy name. They
    are proposals like any generated strategy's: validated in this host's VM before any use.

    Raises:
        StateError / StateCorruptError: from the store.
    """
    rows = db.query("SELECT o.strategy, o.steps FROM imported_outcomes o JOIN fleet_keys k"
                    " ON k.key_id = o.key_id WHERE k.revoked_at IS NULL AND o.steps != ''"
                    " ORDER BY o.strategy, o.bundle_version DESC")
    found: dict[str, tuple[dict[str, Any], ...]] = {}
    for strategy, steps in rows:
        found.setdefault(str(strategy), tuple(json.loads(steps)))
    return found


def import_history(db: StateDb, limit: int = 50) -> list[dict[str, Any]]:
    """Provenance of the newest accepted bundles, newest first."""
    rows = db.query("SELECT key_id, bundle_version, imported_at, created_at, expires_at, vmrepair_version,"
                    " os_release, window_from, window_to, strategies, sha256 FROM fleet_imports"
                    " ORDER BY id DESC LIMIT ?", (limit,))
    return [dict(row) for row in rows]
