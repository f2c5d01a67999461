"""build_daemon and the real hooks, on a temporary state dir (nothing reaches this machine's services)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import AuditSettings, DaemonPolicy, DaemonSettings
from orchestrator.config.settings import Settings
from orchestrator.daemon.detection import DEFERRED
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.wiring import build_daemon, recover_at_start, repair_target
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
    ("auto-repair", ("detect", "baseline", "health", "reboots", "metrics-textfile")),
    ("ask", ("detect", "baseline", "reboots", "metrics-textfile")),
    ("detect-only", ("detect", "baseline", "reboots", "metrics-textfile")),
])
def test_health_polling_only_where_the_policy_lets_the_daemon_act(
        make_app: MakeApp, policy: DaemonPolicy, jobs: tuple[str, ...]) -> None:
    daemon = build_daemon(make_app(policy), notifier=SystemdNotifier(env={}))
    assert daemon.scheduler.job_names == jobs
    assert [h.name for h in daemon.startup_hooks] == ["recovery", "boot-diagnostics"]
    assert daemon.startup_hooks[0].gates_repairs is True


def test_no_baseline_job_without_components(make_app: MakeApp) -> None:
    daemon = build_daemon(make_app(watch=WatchConfig(())), notifier=SystemdNotifier(env={}))
    assert daemon.scheduler.job_names == ("detect", "reboots", "metrics-textfile")


def test_recovery_on_a_fresh_state_dir_is_clean(make_app: MakeApp) -> None:
    app = make_app()
    try:
        result = recover_at_start(app)
    finally:
        app.close()
    assert (result.report, result.errors) == ({"recovered": [], "errors": []}, ())


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
