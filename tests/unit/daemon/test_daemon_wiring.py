"""build_daemon and the real hooks, on a temporary state dir (nothing reaches this machine's services)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import AuditSettings, DaemonPolicy, DaemonSettings
from orchestrator.config.retention import RetentionSettings
from orchestrator.config.settings import Settings
from orchestrator.daemon.detection import DEFERRED
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.wiring import build_daemon, prune_target_state, recover_at_start, repair_target
from orchestrator.state.lock import StateLock
from orchestrator.targets.spec import parse_target

MakeApp = Callable[..., App]


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], tmp_path: Path) -> MakeApp:
    def factory(policy: DaemonPolicy = "ask", **overrides: object) -> App:
        settings = make_settings(daemon=DaemonSettings(policy=policy, socket=tmp_path / "run" / "api.sock"),
                                 audit=AuditSettings(path=tmp_path / "audit.jsonl"), **overrides)
        return App(settings)

    return factory


@pytest.mark.parametrize(("policy", "jobs"), [
    ("auto-repair", ("detect", "baseline", "health", "reboots", "prune", "metrics-textfile")),
    ("ask", ("detect", "baseline", "reboots", "prune", "metrics-textfile")),
    ("detect-only", ("detect", "baseline", "reboots", "prune", "metrics-textfile")),
])
def test_health_polling_only_where_the_policy_lets_the_daemon_act(
        make_app: MakeApp, policy: DaemonPolicy, jobs: tuple[str, ...]) -> None:
    daemon = build_daemon(make_app(policy), notifier=SystemdNotifier(env={}))
    assert daemon.scheduler.job_names == jobs
    assert [h.name for h in daemon.startup_hooks] == ["recovery", "boot-diagnostics"]
    assert daemon.startup_hooks[0].gates_repairs is True


def test_no_baseline_job_without_components(make_app: MakeApp) -> None:
    daemon = build_daemon(make_app(watch=WatchConfig(())), notifier=SystemdNotifier(env={}))
    assert daemon.scheduler.job_names == ("detect", "reboots", "prune", "metrics-textfile")


def test_no_prune_job_when_retention_is_disabled(make_app: MakeApp) -> None:
    app = make_app(retention=RetentionSettings(enabled=False))
    daemon = build_daemon(app, notifier=SystemdNotifier(env={}))
    assert "prune" not in daemon.scheduler.job_names


def test_prune_job_prunes_under_the_lock_and_skips_while_it_is_held(make_app: MakeApp) -> None:
    app = make_app(retention=RetentionSettings(sessions_days=1, interval_s=3600))
    old = app.settings.sessions_dir / "20200101T000000Z-abcdef"
    old.mkdir(parents=True)
    (old / "session.json").write_text('{"status": "running", "started_at": "2020-01-01T00:00:00+00:00"}')
    daemon = build_daemon(app, notifier=SystemdNotifier(env={}))
    job = next(slot.job for slot in daemon.scheduler._slots if slot.job.name == "prune")
    assert job.interval_s == 3600
    with StateLock(app.settings.lock_path):
        assert prune_target_state(app) is None   # a repair holds the lock: this round is skipped
    assert old.is_dir()
    job.run()
    assert not old.exists()   # the lock held by the job: a "running" session that old was a crashed run
    records = [json.loads(line) for line in (app.settings.audit.path).read_text().splitlines()]
    assert [(r["event"], r["component"], r["details"]["removed"]) for r in records] == [
        ("prune", "retention", 1)]


def test_recovery_on_a_fresh_state_dir_is_clean(make_app: MakeApp) -> None:
    app = make_app()
    try:
        result = recover_at_start(app)
    finally:
        app.close()
    assert (result.report, result.errors) == ({"recovered": [], "errors": [], "interrupted": []}, ())


def test_recovery_is_skipped_while_another_process_holds_the_lock(make_app: MakeApp) -> None:
    app = make_app()
    with StateLock(app.settings.lock_path):
        result = recover_at_start(app)
    assert result.errors == ()
    skipped = str(result.report["skipped"])
    assert skipped.startswith(f"another vmrepair process holds {app.settings.lock_path}")


def test_repair_is_deferred_while_another_process_holds_the_lock(make_app: MakeApp) -> None:
    app = make_app("auto-repair")
    holder = StateLock(app.settings.lock_path)
    holder.acquire("vmrepair run")
    try:
        result = repair_target(app, parse_target("local"))
    finally:
        holder.release()
    assert result.status == DEFERRED
    assert "vmrepair run" in result.summary
