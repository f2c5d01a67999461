"""Tables of the state store. Append a migration, never edit one that shipped."""

from __future__ import annotations

#: ``MIGRATIONS[i]`` brings a store from ``user_version`` i to i + 1. Statements are split on ";",
#: so comments inside them must not contain one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        target      TEXT NOT NULL,
        status      TEXT NOT NULL,
        directory   TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        summary     TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE packages (
        id              TEXT PRIMARY KEY,
        directory       TEXT NOT NULL,
        session_id      TEXT,
        target          TEXT NOT NULL,
        component       TEXT NOT NULL,
        strategy        TEXT NOT NULL,
        reboot_required INTEGER NOT NULL,
        created_at      TEXT NOT NULL
    );
    -- One application of a package to a target: its state moves along the journal in txn_steps.
    CREATE TABLE transactions (
        id              TEXT PRIMARY KEY,
        package_id      TEXT NOT NULL,
        package_dir     TEXT NOT NULL,
        target          TEXT NOT NULL,
        session_id      TEXT,
        component       TEXT NOT NULL,
        issue_id        TEXT NOT NULL DEFAULT '',
        strategy        TEXT NOT NULL DEFAULT '',
        backup_dir      TEXT NOT NULL,
        state           TEXT NOT NULL,
        ops_total       INTEGER NOT NULL,
        ops_done        INTEGER NOT NULL DEFAULT 0,
        units_touched   INTEGER NOT NULL DEFAULT 0,
        reboot_required INTEGER NOT NULL DEFAULT 0,
        attempt         INTEGER NOT NULL DEFAULT 1,
        support_ref     TEXT NOT NULL DEFAULT '',
        error           TEXT NOT NULL DEFAULT '',
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX transactions_state ON transactions(state);
    CREATE TABLE txn_steps (
        txn_id  TEXT NOT NULL REFERENCES transactions(id),
        seq     INTEGER NOT NULL,
        step    TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}',
        at      TEXT NOT NULL,
        PRIMARY KEY (txn_id, seq)
    );
    CREATE TABLE reboots (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        target        TEXT NOT NULL,
        txn_id        TEXT,
        policy        TEXT NOT NULL,
        state         TEXT NOT NULL,
        reason        TEXT NOT NULL DEFAULT '',
        requested_at  TEXT NOT NULL,
        not_before    TEXT,
        window        TEXT NOT NULL DEFAULT '',
        updated_at    TEXT NOT NULL,
        error         TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reboots_state ON reboots(state);
    CREATE TABLE outcomes (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        strategy   TEXT NOT NULL,
        succeeded  INTEGER NOT NULL,
        stage      TEXT NOT NULL DEFAULT 'vm',
        target     TEXT NOT NULL DEFAULT '',
        txn_id     TEXT,
        at         TEXT NOT NULL
    );
    CREATE INDEX outcomes_strategy ON outcomes(strategy);
    """,
    # 2: reboots (orchestrator/reboot/schedule.py)
    """
    -- Every fix (transaction) one reboot finishes: a second request for a target joins its open reboot.
    CREATE TABLE reboot_txns (
        reboot_id  INTEGER NOT NULL REFERENCES reboots(id),
        txn_id     TEXT NOT NULL,
        reason     TEXT NOT NULL DEFAULT '',
        at         TEXT NOT NULL,
        PRIMARY KEY (reboot_id, txn_id)
    );
    -- At most one pending reboot per target, enforced by the store (the daemon and the CLI both write).
    CREATE UNIQUE INDEX reboots_one_pending ON reboots(target)
        WHERE state IN ('waiting_operator', 'scheduled');
    """,
    # 3: discovery cache (orchestrator/discover/cache.py)
    """
    -- The components discovered on a target, reused while its unit files and packages are unchanged.
    CREATE TABLE discovery (
        target      TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        components  TEXT NOT NULL,
        notes       TEXT NOT NULL DEFAULT '[]',
        present     TEXT NOT NULL DEFAULT '[]',
        at          REAL NOT NULL
    );
    """,
    # 4: fault signatures of outcomes (orchestrator/state/outcomes.py, orchestrator/fleet/signature.py)
    """
    -- The signature ids of the fault an outcome was recorded for ('' when recorded without one, as
    -- every outcome before this migration), and its readable parts as JSON for `vmrepair fleet stats`.
    ALTER TABLE outcomes ADD COLUMN signature_fine TEXT NOT NULL DEFAULT '';
    ALTER TABLE outcomes ADD COLUMN signature_medium TEXT NOT NULL DEFAULT '';
    ALTER TABLE outcomes ADD COLUMN signature_coarse TEXT NOT NULL DEFAULT '';
    ALTER TABLE outcomes ADD COLUMN signature_parts TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX outcomes_signature_coarse ON outcomes(signature_coarse);
    """,
    # 5: signed fleet bundles (orchestrator/fleet/)
    """
    -- Public keys whose bundles `vmrepair fleet import` accepts. A revoked key stays, marked, for good.
    CREATE TABLE fleet_keys (
        key_id      TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        pubkey      TEXT NOT NULL,
        trusted_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    -- The last bundle version this host exported with each of its own keys (versions only grow).
    CREATE TABLE fleet_exports (
        key_id        TEXT PRIMARY KEY,
        last_version  INTEGER NOT NULL,
        exported_at   TEXT NOT NULL
    );
    -- Provenance of every accepted bundle. The highest version per key is the anti-rollback floor.
    CREATE TABLE fleet_imports (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id            TEXT NOT NULL,
        bundle_version    INTEGER NOT NULL,
        imported_at       TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        expires_at        TEXT NOT NULL,
        vmrepair_version  TEXT NOT NULL,
        os_release        TEXT NOT NULL,
        window_from       TEXT NOT NULL,
        window_to         TEXT NOT NULL,
        strategies        INTEGER NOT NULL,
        sha256            TEXT NOT NULL
    );
    CREATE INDEX fleet_imports_key ON fleet_imports(key_id, bundle_version);
    -- The counts of the newest bundle of each key: a snapshot, replaced whole by the next import.
    CREATE TABLE imported_outcomes (
        key_id            TEXT NOT NULL,
        signature_fine    TEXT NOT NULL,
        signature_medium  TEXT NOT NULL,
        signature_coarse  TEXT NOT NULL,
        strategy          TEXT NOT NULL,
        playbook          TEXT NOT NULL,
        stage             TEXT NOT NULL,
        successes         INTEGER NOT NULL,
        tries             INTEGER NOT NULL,
        bundle_version    INTEGER NOT NULL,
        steps             TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX imported_outcomes_key ON imported_outcomes(key_id);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
