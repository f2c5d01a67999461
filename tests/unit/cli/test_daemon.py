"""`vmrepair status` against an API server on a tmp_path socket, and `vmrepair daemon`'s re-exec."""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.cli.daemon import daemon_argv
from orchestrator.cli.main import main
from orchestrator.daemon.api import ApiRoutes
from orchestrator.daemon.server import ApiServer, Peer, uid_check
from orchestrator.daemon.socketpath import bind_listener
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import DaemonError
from orchestrator.model import Issue, IssueKind, Severity

EXIT_DAEMON = 16


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def socket_env(cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run" / "api.sock"
    monkeypatch.setenv("VMREPAIR_SOCKET", str(path))
    return path


@pytest.fixture
def daemon_api(socket_env: Path, tmp_path: Path) -> Iterator[Callable[..., DaemonState]]:
    """Serve the real API routes over ``state`` on the socket `vmrepair status` uses."""
    servers: list[ApiServer] = []

    def start(*, ready: bool = True, uid: int = 0) -> DaemonState:
        state = DaemonState(target="local", policy="ask")
        if ready:
            state.set_ready("start-up recovery finished")
        server = ApiServer(bind_listener(socket_env, backlog=4), ApiRoutes(state, tmp_path / "sessions"),
                           MemoryAuditSink(), is_allowed=uid_check(()), request_timeout_s=2,
                           max_connections=4, credentials=lambda _conn: Peer(1, uid, uid))
        server.start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.close()


def test_status_json_reports_health_readiness_and_issues(
        daemon_api: Callable[..., DaemonState], socket_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = daemon_api()
    issue = Issue("sampleapp", IssueKind.UNIT_INACTIVE, Severity.CRITICAL, "sampleapp.service",
                  "sampleapp.service is inactive", "unit:sampleapp.service")
    state.record_detection([issue], duration_s=0.3, probes=9, unavailable=[], new_state="pending")
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["socket"] == str(socket_env)
    assert data["health"]["status"] == "alive"
    assert (data["ready"]["ready"], data["ready"]["policy"]) == (True, "ask")
    assert data["issues"]["last_detection"]["probes"] == 9
    assert [(i["id"], i["state"]) for i in data["issues"]["issues"]] == [(issue.id, "pending")]


def test_status_for_people(daemon_api: Callable[..., DaemonState],
                           capsys: pytest.CaptureFixture[str]) -> None:
    state = daemon_api()
    issue = Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx", "[red]nginx -t[/red] fails",
                  "config:nginx")
    state.record_detection([issue], duration_s=0.3, probes=9, unavailable=["unit:x"], new_state="pending")
    assert main(["status"]) == 0
    captured = capsys.readouterr()
    err, out = _flat(captured.err), _flat(captured.out)
    assert "ready: yes - start-up recovery finished (policy ask, target local)" in err
    assert "9 probes in 0.3 s, 1 issue(s), 1 probe(s) unavailable" in err
    assert "config_invalid" in out
    assert "[red]nginx -t[/red] fails" in out  # target text shown as is, never read as markup


def test_status_exits_1_while_the_daemon_is_not_ready(daemon_api: Callable[..., DaemonState],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    daemon_api(ready=False)
    assert main(["status"]) == 1
    assert "ready: NO - start-up recovery has not finished" in _flat(capsys.readouterr().err)


def test_status_without_a_daemon_names_the_remedy(socket_env: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == EXIT_DAEMON
    err = _flat(capsys.readouterr().err)
    assert f"error: no vmrepair daemon is running (nothing answers on {socket_env})" in err
    assert ("remedy: start it with `systemctl start vmrepair` (or `vmrepair daemon --foreground`); if it "
            "listens elsewhere, set VMREPAIR_SOCKET to its socket") in err


def test_status_refused_by_the_daemon(daemon_api: Callable[..., DaemonState], socket_env: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    daemon_api(uid=1000)
    assert main(["status"]) == EXIT_DAEMON
    err = _flat(capsys.readouterr().err)
    assert f"error: the daemon on {socket_env} refused this user" in err
    assert "remedy: run as root, or add your uid to daemon.allowed_uids in config.yaml" in err


def test_daemon_reexecs_into_the_lean_entry_point() -> None:
    args = argparse.Namespace(foreground=True, debug=False)
    assert daemon_argv(args, "/usr/bin/python3") == [
        "/usr/bin/python3", "-P", "-m", "orchestrator.daemon", "--foreground"]
    args = argparse.Namespace(foreground=False, debug=True)
    assert daemon_argv(args, "/usr/bin/python3")[-1] == "--debug"


def test_daemon_blocks_its_signals_before_the_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGHUP (`systemctl reload`) while the daemon still imports must wait for sigtimedwait()
    rather than kill it (issue 13 item 4); the mask survives exec."""
    from orchestrator.cli import daemon as cli_daemon

    seen: list[set[int]] = []

    def fake_exec(_path: str, _argv: list[str]) -> None:
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        raise OSError(2, "No such file or directory")

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    monkeypatch.setattr(cli_daemon.os, "execv", fake_exec)
    with pytest.raises(DaemonError, match="cannot start the daemon"):
        cli_daemon.cmd_daemon(None, argparse.Namespace(foreground=False, debug=False))  # type: ignore[arg-type]
    assert {signal.SIGHUP, signal.SIGTERM, signal.SIGINT} <= seen[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # restored when the exec failed


def test_the_cli_blocks_the_signals_the_daemon_takes() -> None:
    from orchestrator.cli.daemon import HANDLED_SIGNALS as CLI_SIGNALS
    from orchestrator.daemon.service import HANDLED_SIGNALS

    assert CLI_SIGNALS == HANDLED_SIGNALS
