"""SIGHUP reloads the configuration (issue 13 item 4): in-process, with real config files."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonSettings
from orchestrator.daemon.reload import ReloadedConfig, plan_reload
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.daemon.service import Daemon
from orchestrator.daemon.state import DaemonState
from orchestrator.daemon.wiring import config_reloader
from orchestrator.errors import ConfigError
from tests.unit.daemon.helpers import http_get, split_response


def test_plan_applies_live_keys_and_lists_the_rest() -> None:
    running = DaemonSettings()
    loaded = ReloadedConfig(DaemonSettings(allowed_uids=(1000,), policy="auto-repair", job_stall_s=60),
                            Path("/etc/vmrepair/config.yaml"), ("health",))
    plan = plan_reload(running, loaded)
    assert plan.applied == ("daemon.allowed_uids", "daemon.job_stall_s")
    assert plan.needs_restart == ("daemon.policy", "health")
    assert (plan.settings.allowed_uids, plan.settings.job_stall_s, plan.settings.policy) == (
        (1000,), 60, "ask")


def test_an_unchanged_config_changes_nothing() -> None:
    plan = plan_reload(DaemonSettings(), ReloadedConfig(DaemonSettings(), None))
    assert (plan.applied, plan.needs_restart, plan.settings) == ((), (), DaemonSettings())


MakeDaemon = Callable[[Callable[[], ReloadedConfig] | None], Daemon]


@pytest.fixture
def make_daemon(sock_path: Path, tmp_path: Path, audit: MemoryAuditSink) -> Iterator[MakeDaemon]:
    made: list[Daemon] = []

    def factory(reload_config: Callable[[], ReloadedConfig] | None) -> Daemon:
        state = DaemonState(target="local", policy="ask")
        daemon = Daemon(settings=DaemonSettings(), state=state, scheduler=Scheduler([], audit),
                        audit=audit, socket_path=sock_path, sessions_dir=tmp_path / "sessions",
                        reload_config=reload_config)
        daemon.start()
        made.append(daemon)
        return daemon

    yield factory
    for daemon in made:
        daemon.stop()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_valid_config_takes_effect_with_a_log_line_and_an_audit_record(
        make_daemon: MakeDaemon, tmp_path: Path, sock_path: Path, audit: MemoryAuditSink,
        caplog: pytest.LogCaptureFixture) -> None:
    config = _write(tmp_path / "config.yaml", "daemon: {allowed_uids: [1000], policy: auto-repair}\n")
    daemon = make_daemon(lambda: ReloadedConfig(DaemonSettings(allowed_uids=(1000,), policy="auto-repair"),
                                                config))
    with caplog.at_level(logging.INFO, logger="orchestrator.daemon.service"):
        assert daemon.reload() is True
    assert daemon.settings.allowed_uids == (1000,)
    assert daemon.settings.policy == "ask"  # needs a restart
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o666  # uid 1000 may connect now
    assert (f"SIGHUP: reloaded {config}: applied daemon.allowed_uids; needs a restart to apply: "
            "daemon.policy") in caplog.text
    assert audit.records[-1] == {
        "event": "config_reloaded", "component": "daemon", "status": "ok", "durable": True,
        "details": {"path": str(config), "applied": ["daemon.allowed_uids"],
                    "needs_restart": ["daemon.policy"]}}
    assert split_response(http_get(sock_path, "/health"))[0] == 200


def test_an_invalid_config_is_refused_and_the_running_one_kept(
        make_daemon: MakeDaemon, tmp_path: Path, sock_path: Path, audit: MemoryAuditSink,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> ReloadedConfig:
        raise ConfigError(f"{tmp_path / 'config.yaml'}: daemon.max_connections: Input should be greater "
                          "than or equal to 1")

    daemon = make_daemon(broken)
    with caplog.at_level(logging.INFO, logger="orchestrator.daemon.service"):
        assert daemon.reload() is False
    assert daemon.settings == DaemonSettings()
    assert (f"SIGHUP: configuration refused, the running one is kept: {tmp_path / 'config.yaml'}: "
            "daemon.max_connections: Input should be greater than or equal to 1") in caplog.text
    assert audit.records[-1]["event"] == "config_reload_refused"
    assert audit.records[-1]["status"] == "refused"
    assert split_response(http_get(sock_path, "/health"))[0] == 200


def test_a_crashing_loader_is_refused_not_fatal(make_daemon: MakeDaemon, audit: MemoryAuditSink,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def crash() -> ReloadedConfig:
        raise RecursionError("maximum recursion depth exceeded")

    daemon = make_daemon(crash)
    assert daemon.reload() is False
    assert "SIGHUP: configuration refused, the running one is kept: RecursionError: maximum" in caplog.text


def test_no_reloader_says_so(make_daemon: MakeDaemon, caplog: pytest.LogCaptureFixture) -> None:
    assert make_daemon(None).reload() is False
    assert "SIGHUP: this daemon has no configuration to reload" in caplog.text


# -- the real loader ----------------------------------------------------------------------------------

def test_config_reloader_reads_the_file_and_names_other_changed_sections(tmp_path: Path) -> None:
    config = _write(tmp_path / "config.yaml", f"audit: {{path: {tmp_path / 'a.jsonl'}}}\n")
    env = {"VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "state")}
    from orchestrator.config.settings import load_settings

    reload = config_reloader(load_settings(env), env=env)
    assert reload() == ReloadedConfig(DaemonSettings(), config, ())
    _write(config, f"audit: {{path: {tmp_path / 'b.jsonl'}}}\ndaemon: {{job_stall_s: 60}}\n"
                   "health: {interval_s: 5}\n")
    loaded = reload()
    assert loaded.daemon.job_stall_s == 60
    assert loaded.other_changes == ("audit", "health")


@pytest.mark.parametrize(("text", "expected"), [
    (None, "file not found"),
    ("daemon: [\n", "malformed YAML"),
    ("daemon: {policy: yolo}\n", "daemon.policy"),
    ("daemon: {nope: 1}\n", "daemon.nope: unknown key"),
])
def test_config_reloader_raises_config_errors_naming_the_file(tmp_path: Path, text: str | None,
                                                             expected: str) -> None:
    config = tmp_path / "config.yaml"
    env = {"VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "state")}
    from orchestrator.config.settings import load_settings

    _write(config, "")
    reload = config_reloader(load_settings(env), env=env)
    if text is None:
        config.unlink()
    else:
        _write(config, text)
    with pytest.raises(ConfigError) as caught:
        reload()
    assert str(config) in caught.value.message
    assert expected in caught.value.message
