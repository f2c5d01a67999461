"""The endpoints, called in-process (the socket side is covered by test_daemon_server)."""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.audit.sink import MemoryAuditSink, log_quarantine, log_recovery
from orchestrator.daemon.api import ApiRoutes
from orchestrator.daemon.audit_tap import CountingAuditSink
from orchestrator.daemon.http import Request
from orchestrator.daemon.state import DaemonState
from orchestrator.model import SessionStatus
from orchestrator.session.store import new_session
from tests.unit.daemon.helpers import make_issue


def _get(routes: ApiRoutes, path: str, method: str = "GET", **query: str) -> tuple[int, bytes]:
    response = routes(Request(method, path, dict(query), {}))
    return response.status.value, response.body


def _json(routes: ApiRoutes, path: str, **query: str) -> tuple[int, dict[str, Any]]:
    status, body = _get(routes, path, **query)
    data = json.loads(body)
    assert isinstance(data, dict)
    return status, data


def test_health_answers_while_not_ready(state: DaemonState, tmp_path: Path) -> None:
    routes = ApiRoutes(state, tmp_path)
    status, data = _json(routes, "/health")
    assert (status, data["status"]) == (200, "alive")


def test_ready_is_503_until_start_up_recovery_finished(state: DaemonState, tmp_path: Path) -> None:
    routes = ApiRoutes(state, tmp_path)
    status, data = _json(routes, "/ready")
    assert (status, data["ready"], data["detail"]) == (503, False, "start-up recovery has not finished")
    state.record_startup("recovery", {"recovered": 0})
    state.set_ready("start-up recovery finished")
    status, data = _json(routes, "/ready")
    assert (status, data["ready"], data["startup"]) == (200, True, {"recovery": {"recovered": 0}})


def test_issues_show_their_state(state: DaemonState, tmp_path: Path) -> None:
    issue = make_issue()
    state.record_detection([issue], duration_s=0.5, probes=7, unavailable=["unit:x"], new_state="pending")
    status, data = _json(ApiRoutes(state, tmp_path), "/issues")
    assert status == 200
    assert data["policy"] == "ask"
    last = data["last_detection"]
    assert last == {"at": last["at"], "duration_s": 0.5, "probes": 7, "issues": 1, "unavailable": ["unit:x"]}
    [shown] = data["issues"]
    assert (shown["id"], shown["state"], shown["session"]) == (issue.id, "pending", None)


def test_sessions_newest_first_with_a_limit(state: DaemonState, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    first = new_session(sessions, "local")
    first.finish(SessionStatus.REPAIRED, "restarted in place")
    second = new_session(sessions, "local")
    routes = ApiRoutes(state, sessions)
    status, data = _json(routes, "/sessions")
    ids = [s["id"] for s in data["sessions"]]
    assert status == 200
    assert sorted(ids, reverse=True) == ids
    assert set(ids) == {first.id, second.id}
    _, data = _json(routes, "/sessions", limit="1")
    assert len(data["sessions"]) == 1


def test_sessions_limit_is_validated(state: DaemonState, tmp_path: Path) -> None:
    status, data = _json(ApiRoutes(state, tmp_path), "/sessions", limit="all")
    assert (status, data) == (400, {"error": "limit must be a number from 1 to 200"})


def test_no_sessions_yet_is_an_empty_list(state: DaemonState, tmp_path: Path) -> None:
    assert _json(ApiRoutes(state, tmp_path / "none"), "/sessions") == (200, {"sessions": []})


def test_unknown_path_is_404_naming_the_endpoints(state: DaemonState, tmp_path: Path) -> None:
    status, data = _json(ApiRoutes(state, tmp_path), "/admin")
    assert status == 404
    assert data == {"error": "no endpoint /admin",
                    "endpoints": ["/health", "/ready", "/sessions", "/issues", "/metrics"]}


def test_other_methods_are_405(state: DaemonState, tmp_path: Path) -> None:
    response = ApiRoutes(state, tmp_path)(Request("POST", "/issues", {}, {}))
    assert response.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert response.headers == (("Allow", "GET"),)
    assert json.loads(response.body) == {"error": "POST is not allowed; use GET"}


def test_metrics_count_what_happened(state: DaemonState, tmp_path: Path) -> None:
    sink = CountingAuditSink(MemoryAuditSink(), state)
    state.set_ready("ok")
    state.record_detection([make_issue(), make_issue("nginx", subject="nginx.service")], duration_s=1,
                           probes=3, unavailable=[], new_state="recorded")
    state.record_repair("repaired")
    state.job_finished("detect", True, 1700000000.5, 1.0)
    state.job_finished("detect", False, 1700000060.0, 1.0)
    log_recovery(sink, "nginx", "restart")
    log_quarantine(sink, "sampleapp", "keeps failing")
    routes = ApiRoutes(state, tmp_path, rss=lambda: 50 * 1024 * 1024)
    response = routes(Request("GET", "/metrics", {}, {}))
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    text = response.body.decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert {
        ("vmrepair_daemon_ready", ()): 1,
        ("vmrepair_detection_runs_total", ()): 1,
        ("vmrepair_issues", (("component", "nginx"),)): 1,
        ("vmrepair_issues", (("component", "sampleapp"),)): 1,
        ("vmrepair_daemon_repairs_total", (("outcome", "repaired"),)): 1,
        ("vmrepair_restarts_total", (("component", "nginx"),)): 1,
        ("vmrepair_quarantines_total", (("component", "sampleapp"),)): 1,
        ("vmrepair_job_runs_total", (("job", "detect"), ("result", "ok"))): 1,
        ("vmrepair_job_runs_total", (("job", "detect"), ("result", "failed"))): 1,
        ("vmrepair_job_last_run_timestamp_seconds", (("job", "detect"),)): 1700000060,
        ("vmrepair_job_last_success_timestamp_seconds", (("job", "detect"),)): 1700000000.5,
        ("process_resident_memory_bytes", ()): 52428800,
    }.items() <= samples.items()
    assert "# TYPE vmrepair_job_runs_total counter" in text.splitlines()


@pytest.mark.parametrize("text", ["²", "1²", "\u0661", "0", "201", "-1", "+5", " 5", "5 ", "1" * 5000, "",
                                  "0x10", "1e2", "१२"])
def test_sessions_limit_must_be_ascii_digits_in_range(state: DaemonState, tmp_path: Path, text: str) -> None:
    """Regression (issue 13 item 10): '²' passed str.isdigit() and 5,000 digits passed too; both
    crashed int() with a 500 and a traceback."""
    status, data = _json(ApiRoutes(state, tmp_path), "/sessions", limit=text)
    assert (status, data) == (400, {"error": "limit must be a number from 1 to 200"})


@pytest.mark.parametrize("text", ["1", "007", "200"])
def test_sessions_limit_in_range_is_accepted(state: DaemonState, tmp_path: Path, text: str) -> None:
    assert _json(ApiRoutes(state, tmp_path / "none"), "/sessions", limit=text) == (200, {"sessions": []})


def test_a_fifo_session_is_listed_unreadable_and_does_not_hang(state: DaemonState, tmp_path: Path) -> None:
    """Regression (issue 13 item 5): /sessions opened a FIFO session.json and blocked for ever,
    holding one of the API's connection slots."""
    good = new_session(tmp_path / "sessions", "local")
    fifo = tmp_path / "sessions" / "29990101T000000Z-ffffff"
    fifo.mkdir()
    os.mkfifo(fifo / "session.json")
    status, data = _json(ApiRoutes(state, tmp_path / "sessions"), "/sessions")
    assert status == 200
    assert data["sessions"][0] == {
        "id": fifo.name, "status": "unreadable", "unreadable": "not a regular file (a FIFO)",
        "summary": "unreadable session.json: not a regular file (a FIFO)", "target": None,
        "started_at": None, "finished_at": None, "report": None, "exit_code": None}
    assert data["sessions"][1]["id"] == good.id
    assert "unreadable" not in data["sessions"][1]


def test_an_unlistable_sessions_dir_is_500_naming_it(state: DaemonState, tmp_path: Path) -> None:
    (tmp_path / "sessions").mkdir(mode=0o000)
    try:
        if os.access(tmp_path / "sessions", os.R_OK):
            pytest.skip("running as root: permissions do not stop us")
        status, data = _json(ApiRoutes(state, tmp_path / "sessions"), "/sessions")
    finally:
        (tmp_path / "sessions").chmod(0o700)
    assert status == 500
    assert data["error"].startswith(f"cannot list sessions in {tmp_path / 'sessions'}: ")
