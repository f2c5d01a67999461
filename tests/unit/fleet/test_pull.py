"""The daemon's bundle pickup: new trusted bundles imported, refusals reported once, odd files skipped."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.fleet.imports import import_history
from orchestrator.fleet.keys import SigningKey
from orchestrator.fleet.pull import DirectoryPuller, FleetPullJob
from orchestrator.state.db import StateDb, open_state
from tests.unit.fleet.conftest import NOW, add_outcome, trust


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def test_new_bundles_are_imported_once(exporter_db: StateDb, importer_db: StateDb, key: SigningKey,
                                       make_bundle: Callable[..., bytes], inbox: Path) -> None:
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True)
    trust(importer_db, key)
    (inbox / "a.bundle").write_bytes(make_bundle())
    (inbox / "notes.txt").write_text("not a bundle: ignored")
    puller = DirectoryPuller(inbox)
    assert puller.pull(importer_db, now=NOW).imported == ["a.bundle"]
    second = puller.pull(importer_db, now=NOW)
    assert (second.imported, second.refused) == ([], [])  # same content: skipped, not a replay error
    assert len(import_history(importer_db)) == 1


def test_a_refused_bundle_is_reported_once(exporter_db: StateDb, importer_db: StateDb,
                                           make_bundle: Callable[..., bytes], inbox: Path) -> None:
    (inbox / "stranger.bundle").write_bytes(make_bundle())
    puller = DirectoryPuller(inbox)
    [(name, reason)] = puller.pull(importer_db, now=NOW).refused
    assert name == "stranger.bundle"
    assert reason.startswith("bundle refused: unknown key")
    assert puller.pull(importer_db, now=NOW).refused == []


def test_an_expired_bundle_in_the_directory_is_refused(importer_db: StateDb, key: SigningKey,
                                                       make_bundle: Callable[..., bytes],
                                                       inbox: Path) -> None:
    trust(importer_db, key)
    (inbox / "old.bundle").write_bytes(make_bundle(expires_days=1))
    [(_, reason)] = DirectoryPuller(inbox).pull(importer_db, now=NOW + dt.timedelta(days=2)).refused
    assert "expired" in reason
    assert import_history(importer_db) == []


def test_symlinks_fifos_and_a_missing_directory_are_skipped(importer_db: StateDb, key: SigningKey,
                                                            make_bundle: Callable[..., bytes],
                                                            inbox: Path, tmp_path: Path) -> None:
    trust(importer_db, key)
    real = tmp_path / "elsewhere.bundle"
    real.write_bytes(make_bundle())
    (inbox / "link.bundle").symlink_to(real)
    os.mkfifo(inbox / "fifo.bundle")  # reading it would block the daemon's only thread
    report = DirectoryPuller(inbox).pull(importer_db, now=NOW)
    assert (report.imported, report.refused) == ([], [])
    missing = DirectoryPuller(tmp_path / "none").pull(importer_db, now=NOW)
    assert (missing.imported, missing.refused) == ([], [])


def test_the_job_opens_the_store_for_each_round(exporter_db: StateDb, key: SigningKey,
                                                make_bundle: Callable[..., bytes], inbox: Path,
                                                tmp_path: Path) -> None:
    store = tmp_path / "job" / "state.db"
    with open_state(store) as db:
        trust(db, key)
    (inbox / "a.bundle").write_bytes(make_bundle(now=dt.datetime.now(dt.UTC)))
    job = FleetPullJob(interval_s=60, puller=DirectoryPuller(inbox), db=lambda: open_state(store))
    job.run()
    with open_state(store) as db:
        assert len(import_history(db)) == 1
    assert job.name == "fleet-pull"
