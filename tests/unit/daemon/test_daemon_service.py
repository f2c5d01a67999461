"""The daemon's lifecycle in-process: notifications, start-up hooks, readiness, stop and abandonment."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonSettings
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.daemon.service import Daemon, HookResult, StartupHook
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import StateCorruptError
from tests.unit.daemon.helpers import http_get, split_response


@dataclass
class FakeJob:
    name: str
    interval_s: float
    action: Callable[[], None]

    def run(self) -> None:
        self.action()


@pytest.fixture
def notifications(tmp_path: Path) -> Iterator[tuple[SystemdNotifier, Callable[[], list[str]]]]:
    """A notifier aimed at a datagram socket in tmp_path, and a function reading what arrived."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)

        def received() -> list[str]:
            found = []
            while True:
                try:
                    found.append(sock.recv(4096).decode())
                except BlockingIOError:
                    return found

        yield SystemdNotifier(env={"NOTIFY_SOCKET": str(path)}), received


MakeDaemon = Callable[..., Daemon]


@pytest.fixture
def make_daemon(sock_path: Path, tmp_path: Path, audit: MemoryAuditSink,
                notifications: tuple[SystemdNotifier, Callable[[], list[str]]]) -> Iterator[MakeDaemon]:
    made: list[Daemon] = []

    def factory(jobs: Sequence[FakeJob] = (), hooks: Sequence[StartupHook] = (),
                stop_grace_s: float = 2.0) -> Daemon:
        state = DaemonState(target="local", policy="ask")
        daemon = Daemon(settings=DaemonSettings(stop_grace_s=stop_grace_s), state=state,
                        scheduler=Scheduler(jobs, audit, observer=state.job_finished), audit=audit,
                        socket_path=sock_path, sessions_dir=tmp_path / "sessions",
                        startup_hooks=hooks, notifier=notifications[0])
        made.append(daemon)
        return daemon

    yield factory
    for daemon in made:
        daemon.stop()


def _ready(sock_path: Path) -> tuple[int, dict[str, object]]:
    status, _, body = split_response(http_get(sock_path, "/ready"))
    return status, json.loads(body)


def test_start_serves_runs_jobs_and_notifies_ready_then_stops_cleanly(
        make_daemon: MakeDaemon, sock_path: Path,
        notifications: tuple[SystemdNotifier, Callable[[], list[str]]]) -> None:
    ran = threading.Event()
    daemon = make_daemon([FakeJob("detect", 3600, ran.set)])
    daemon.start()
    assert daemon.wait_started(2)
    assert ran.wait(2)
    assert _ready(sock_path)[0] == 200
    assert notifications[1]() == ["STATUS=starting",
                                  "READY=1\nSTATUS=start-up recovery finished; policy ask on local"]
    assert daemon.stop() is True
    assert notifications[1]() == ["STOPPING=1\nSTATUS=stopping"]
    assert not sock_path.exists()


def test_api_answers_not_ready_while_start_up_recovery_runs(make_daemon: MakeDaemon, sock_path: Path) -> None:
    seen: list[tuple[int, dict[str, object]]] = []

    def recovery() -> HookResult:
        seen.append(_ready(sock_path))
        return HookResult({"recovered": 1})

    daemon = make_daemon(hooks=[StartupHook("recovery", recovery, gates_repairs=True)])
    daemon.start()
    assert daemon.wait_started(5)
    assert seen[0][0] == 503
    assert seen[0][1]["detail"] == "start-up recovery has not finished"
    status, body = _ready(sock_path)
    assert (status, body["startup"]) == (200, {"recovery": {"recovered": 1, "errors": []}})


def test_failed_recovery_holds_repairs_back_and_is_audited(make_daemon: MakeDaemon, sock_path: Path,
                                                           audit: MemoryAuditSink) -> None:
    def recovery() -> HookResult:
        raise StateCorruptError("journal of transaction 7 fails its checksum", remedy="inspect it")

    seen_by_later_hooks: list[bool] = []

    def boot_diagnostics() -> HookResult:
        seen_by_later_hooks.append(daemon.state.repairs_allowed)
        return HookResult({"ok": True})

    daemon = make_daemon(hooks=[StartupHook("recovery", recovery, gates_repairs=True),
                                StartupHook("boot-diagnostics", boot_diagnostics)])
    daemon.start()
    assert daemon.wait_started(5)
    status, body = _ready(sock_path)
    assert status == 503
    assert body["detail"] == ("recovery failed: journal of transaction 7 fails its checksum; repairs are "
                              "held back until a restart recovers cleanly")
    assert body["repairs_allowed"] is False
    assert daemon.state.repairs_allowed is False
    assert seen_by_later_hooks == [False]  # boot diagnostics must not remediate either
    assert audit.records[0]["details"] == {
        "message": "start-up recovery: journal of transaction 7 fails its checksum", "hook": "recovery"}


def test_failed_boot_diagnostics_do_not_hold_repairs_back(make_daemon: MakeDaemon, sock_path: Path,
                                                          audit: MemoryAuditSink) -> None:
    daemon = make_daemon(hooks=[StartupHook("boot-diagnostics",
                                            lambda: HookResult({}, ("fstab names /dev/vdb1",)))])
    daemon.start()
    assert daemon.wait_started(5)
    assert _ready(sock_path)[0] == 200
    assert daemon.state.repairs_allowed is True
    assert audit.records[0]["details"]["message"] == "start-up boot-diagnostics: fstab names /dev/vdb1"


def test_a_job_still_running_after_the_grace_period_is_abandoned(make_daemon: MakeDaemon,
                                                                 audit: MemoryAuditSink) -> None:
    inside, release = threading.Event(), threading.Event()

    def long_repair() -> None:
        inside.set()
        release.wait(10)

    daemon = make_daemon([FakeJob("detect", 3600, long_repair)], stop_grace_s=0.2)
    daemon.start()
    assert inside.wait(2)
    began = time.monotonic()
    assert daemon.stop() is False
    assert time.monotonic() - began < 1.5
    message = audit.records[-1]["details"]["message"]
    assert message.startswith("job detect abandoned at stop after ")
    assert message.endswith("an interrupted fix application is recovered at the next start")
    release.set()


def test_a_crashing_hook_is_reported_and_the_jobs_still_run(make_daemon: MakeDaemon,
                                                             audit: MemoryAuditSink) -> None:
    ran = threading.Event()

    def buggy() -> HookResult:
        raise KeyError("oops")

    daemon = make_daemon([FakeJob("detect", 3600, ran.set)], hooks=[StartupHook("boot-diagnostics", buggy)])
    daemon.start()
    assert ran.wait(5)
    assert audit.records[0]["details"]["message"] == "start-up boot-diagnostics: KeyError: 'oops'"


def test_a_job_that_finishes_within_the_grace_period_is_waited_for(make_daemon: MakeDaemon) -> None:
    inside = threading.Event()

    def short_repair() -> None:
        inside.set()
        time.sleep(0.3)

    daemon = make_daemon([FakeJob("detect", 3600, short_repair)], stop_grace_s=3)
    daemon.start()
    assert inside.wait(2)
    assert daemon.stop() is True
