"""prune_state on a temporary state directory with a real state store: removal, dry run, audit record,
links left alone; and `vmrepair prune` in-process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import AuditSettings
from orchestrator.config.retention import RetentionSettings
from orchestrator.config.settings import Settings
from orchestrator.prune.run import prune_state
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore

OLD = time.time() - 400 * 86400


def _aged(path: Path) -> Path:
    os.utime(path, (OLD, OLD))
    return path


def _session(settings: Settings, name: str, status: str) -> Path:
    directory = settings.sessions_dir / name
    directory.mkdir(parents=True)
    meta = {"status": status, "started_at": "2020-01-01T00:00:00Z"}
    (directory / "session.json").write_text(json.dumps(meta))
    return directory


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(retention=RetentionSettings(sessions_days=30, backups_days=30, packages_days=30),
                         audit=AuditSettings(path=tmp_path / "audit.jsonl"))


@pytest.fixture
def layout(settings: Settings) -> dict[str, Path]:
    """Two old transactions: tx-a committed (rollback possible), tx-b rolled back; an old orphan backup."""
    paths = {"done": _session(settings, "S1", "repaired"), "run": _session(settings, "S2", "running")}
    store = TransactionStore(open_state(settings.state_db))
    for name, state in (("a", "committed"), ("b", "rolled_back")):
        backup = _aged(_mkdir(settings.state_dir / "backups" / "S1" / f"nginx-tx-{name}"))
        package = _aged(_mkdir(settings.state_dir / "packages" / f"pkg-{name}"))
        txn = store.create(package_id=f"pkg-{name}", package_dir=str(package), target="local",
                           component="nginx", backup_dir=str(backup), ops_total=1, session_id="S1")
        store.step(txn.id, "done", state=state)
        with store.db.write() as tx:  # ended long ago
            tx.execute("UPDATE transactions SET updated_at = ? WHERE id = ?",
                       ("2020-01-01T00:00:00+00:00", txn.id))
        paths[f"backup-{name}"], paths[f"package-{name}"] = backup, package
    paths["orphan"] = _aged(_mkdir(settings.state_dir / "backups" / "S9" / "x-tx-c"))
    store.db.close()
    return paths


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "blob").write_text("content")
    return path


def test_prune_removes_only_what_is_due_and_audits_it(settings: Settings, layout: dict[str, Path]) -> None:
    audit = MemoryAuditSink()
    dry = prune_state(settings, audit, dry_run=True, lock_held=False)
    assert sorted(d.item.path.name for d in dry.to_prune) == ["S1", "nginx-tx-b", "pkg-a", "pkg-b"]
    assert all(p.exists() for p in layout.values()) and audit.records == []   # a dry run changes nothing
    report = prune_state(settings, audit, dry_run=False, lock_held=True)
    gone = {name for name, path in layout.items() if not path.exists()}
    # S2 "running" goes too: the lock is held, so it is a crashed run's leftover.
    assert gone == {"done", "run", "backup-b", "package-a", "package-b"}
    kept = {d.item.path.name: d.reason for d in report.decisions if not d.prune}
    assert kept["nginx-tx-a"].endswith("is committed and can still be rolled back")
    assert kept["x-tx-c"].startswith("no transaction refers to it")
    (record,) = audit.records
    assert (record["event"], record["component"], record["status"]) == ("prune", "retention", "pruned")
    assert record["details"]["removed"] == 5 and record["details"]["kept"] == 2


def test_links_in_the_state_dir_are_never_followed_or_removed(settings: Settings, tmp_path: Path) -> None:
    victim = _aged(_mkdir(tmp_path / "elsewhere"))
    settings.sessions_dir.mkdir(parents=True)
    (settings.sessions_dir / "S-link").symlink_to(victim)
    report = prune_state(settings, MemoryAuditSink(), dry_run=False, lock_held=True)
    assert report.decisions == [] and (victim / "blob").exists()


def test_unreadable_store_keeps_backups_and_packages(settings: Settings, layout: dict[str, Path]) -> None:
    settings.state_db.write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.state_db}{suffix}").unlink(missing_ok=True)
    report = prune_state(settings, MemoryAuditSink(), dry_run=True, lock_held=True)
    assert report.store_error
    # Only the finished session: a "running" one may be an in-flight transaction's, which is unknown now.
    assert {d.item.path.name for d in report.to_prune} == {"S1"}
    reasons = {d.item.path.name: d.reason for d in report.decisions}
    assert reasons["S2"] == "the state store cannot be read: its transactions are unknown"
    assert reasons["pkg-b"] == "the state store cannot be read: nothing tells whether it is still needed"


def test_cli_prune_dry_run_json(settings: Settings, layout: dict[str, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli.main import main

    config = tmp_path / "config.yaml"
    config.write_text(f"config_dropin_dir: {tmp_path / 'config.d'}\nretention: {{sessions_days: 30}}\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(settings.state_dir))
    assert main(["prune", "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True and data["removed"] == []
    reasons = {Path(d["path"]).name: d["reason"] for d in data["decisions"]}
    assert reasons["S2"] == "may belong to a run in progress (the state lock is not held)"
    assert main(["prune"]) == 0
    assert not layout["done"].exists() and layout["backup-a"].exists()
    assert "removed" in capsys.readouterr().err
