"""Hostile input against the daemon's socket API, its sessions listing, SIGHUP and its client
(issue 13 items 4, 5, 6, 10). The server runs in-process on a socket in tmp_path; every case asserts
the status (or exit code) and the message a user or a log reader sees."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonSettings
from orchestrator.config.settings import load_settings
from orchestrator.daemon.api import ApiRoutes
from orchestrator.daemon.client import MAX_RESPONSE_BYTES, DaemonClient
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.daemon.server import ApiServer, Peer, uid_check
from orchestrator.daemon.service import Daemon
from orchestrator.daemon.socketpath import bind_listener
from orchestrator.daemon.state import DaemonState
from orchestrator.daemon.wiring import config_reloader
from orchestrator.errors import DaemonError
from tests.hostile.conftest import CliResult

EXIT_STATE, EXIT_DAEMON = 6, 16
GOOD = "20260101T000000Z-aaaaaa"
BAD = "20260601T000000Z-bbbbbb"


# -- fixtures and helpers ------------------------------------------------------------------------------

@pytest.fixture
def sock_path(hostile_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = hostile_env / "run" / "api.sock"
    monkeypatch.setenv("VMREPAIR_SOCKET", str(path))
    return path


@pytest.fixture
def sessions_dir(hostile_env: Path) -> Path:
    """state/sessions with one good session in it."""
    directory = hostile_env / "state" / "sessions" / GOOD
    directory.mkdir(parents=True)
    (directory / "session.json").write_text(json.dumps(
        {"id": GOOD, "target": "local", "status": "repaired", "summary": "restarted nginx"}))
    return directory.parent


def _by_name(conn: socket.socket) -> Peer:
    """Fake credentials: the uid in the client's bound name (``c-UID-N``), root when unbound."""
    name = conn.getpeername()
    uid = int(Path(name).name.split("-")[1]) if name else 0
    return Peer(4242, uid, uid)


@pytest.fixture
def api(sock_path: Path, sessions_dir: Path) -> Iterator[MemoryAuditSink]:
    """The real routes on ``sock_path``: 4 slots, 1 s per request, uid 0 and 1001 allowed."""
    audit = MemoryAuditSink()
    state = DaemonState(target="local", policy="ask")
    state.set_ready("start-up recovery finished")
    server = ApiServer(bind_listener(sock_path, backlog=64), ApiRoutes(state, sessions_dir), audit,
                       is_allowed=uid_check((1001,)), request_timeout_s=1, max_connections=4,
                       credentials=_by_name)
    server.start()
    yield audit
    server.close()


_names = itertools.count()


def _connect(sock_path: Path, uid: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if uid is not None:
        sock.bind(str(sock_path.parent / f"c-{uid}-{next(_names)}"))
    sock.settimeout(5)
    sock.connect(str(sock_path))
    return sock


def _exchange(sock_path: Path, raw: bytes, *, uid: int | None = None) -> tuple[int, dict[str, object]]:
    with _connect(sock_path, uid) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    data = json.loads(body) if body.strip() else {}
    return int(head.split(b" ", 2)[1]), data


def _get(sock_path: Path, target: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    return _exchange(sock_path, f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


# -- request lines, headers, sizes ---------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "status", "error"), [
    (b"HELLO\r\n\r\n", 400, "malformed request line"),
    (b"GET /health\r\n\r\n", 400, "malformed request line"),
    (b"GET /health HTTP/2\r\n\r\n", 400, "malformed request line"),
    (b"GET  /health HTTP/1.1\r\n\r\n", 400, "malformed request line"),
    (b"GET /health HTTP/1.1 extra\r\n\r\n", 400, "malformed request line"),
    (b"\r\n\r\n", 400, "malformed request line"),
    (b"GET /h\xffalth HTTP/1.1\r\n\r\n", 400, "request head is not ASCII"),
    (b"GET /health HTTP/1.1\r\nX: \xc3\xa9\r\n\r\n", 400, "request head is not ASCII"),
    (b"GET //[ HTTP/1.1\r\n\r\n", 400, "malformed request target"),
    (b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\n: empty name\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "invalid Content-Length"),
    (b"GET /health HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "invalid Content-Length"),
    (b"GET /health HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n", 400, "request head is not ASCII"),
    (b"GET /health HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 400, "invalid Content-Length"),
    (b"GET /health HTTP/1.1\r\nContent-Length: 0\r\ncontent-length: 5\r\n\r\n", 400,
     "more than one Content-Length"),
    (b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
     "chunked request bodies are not supported"),
    (b"GET /health HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413, "request over 1048576 bytes"),
    (b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * (1024 * 1024 + 10) + b"\r\n\r\n", 413,
     "request over 1048576 bytes"),
], ids=["no-version", "two-parts", "http2", "double-space", "four-parts", "empty-line", "non-ascii-path",
        "non-ascii-header", "unclosed-ipv6-target", "header-no-colon", "header-leading-space",
        "header-empty-name", "negative-length", "float-length", "superscript-length", "5000-digit-length",
        "two-lengths", "chunked", "length-over-cap", "head-over-cap"])
def test_bad_requests_get_a_4xx_naming_the_problem(api: MemoryAuditSink, sock_path: Path, raw: bytes,
                                                   status: int, error: str) -> None:
    assert _exchange(sock_path, raw) == (status, {"error": error})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "get", "BREW"])
def test_methods_other_than_get_are_405(api: MemoryAuditSink, sock_path: Path, method: str) -> None:
    assert _get(sock_path, "/health", method) == (405, {"error": f"{method} is not allowed; use GET"})


@pytest.mark.parametrize("target", ["/nope", "/health/../etc/passwd", "/%2e%2e/health", "/health\x1b[31m",
                                    "/" + "a" * 100_000, "*"])
def test_unknown_paths_are_404_listing_the_endpoints(api: MemoryAuditSink, sock_path: Path,
                                                     target: str) -> None:
    status, data = _get(sock_path, target)
    assert status == 404
    assert str(data["error"]).startswith("no endpoint ")
    assert data["endpoints"] == ["/health", "/ready", "/sessions", "/issues", "/metrics"]


@pytest.mark.parametrize("limit", ["%C2%B2", "1%C2%B2", "%D9%A1", "9" * 5000, "0", "201", "-1", "abc", "",
                                   "1%0A", "%201"],
                         ids=["superscript", "digit-superscript", "arabic-digit", "5000-digits", "zero",
                              "over-max", "negative", "letters", "empty", "trailing-newline",
                              "leading-space"])
def test_sessions_limit_is_ascii_digits_in_range(api: MemoryAuditSink, sock_path: Path, limit: str) -> None:
    assert _get(sock_path, f"/sessions?limit={limit}") == (
        400, {"error": "limit must be a number from 1 to 200"})


def test_sessions_limit_in_range_is_served(api: MemoryAuditSink, sock_path: Path) -> None:
    status, data = _get(sock_path, "/sessions?limit=1&limit=1&x=%ff")
    assert status == 200
    assert [row["id"] for row in data["sessions"]] == [GOOD]  # type: ignore[attr-defined]


# -- peers and slow clients ----------------------------------------------------------------------------

def test_a_refused_uid_gets_403_at_once_and_is_audited(api: MemoryAuditSink, sock_path: Path) -> None:
    assert _exchange(sock_path, b"", uid=1000) == (403, {"error": "uid 1000 may not use this API"})
    assert api.records[-1]["details"] == {"uid": 1000, "pid": 4242, "gid": 1000}


def test_slow_refused_peers_cannot_starve_root(api: MemoryAuditSink, sock_path: Path) -> None:
    slow = [_connect(sock_path, 1000) for _ in range(16)]
    try:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /health HTTP/1.1\r\n")
        assert _get(sock_path, "/health")[0] == 200
    finally:
        for sock in slow:
            sock.close()


def test_allowed_non_root_users_cannot_take_roots_last_slot(api: MemoryAuditSink, sock_path: Path) -> None:
    idle = [_connect(sock_path, 1001) for _ in range(3)]  # 3 of 4 slots: all a non-root uid may have
    try:
        time.sleep(0.1)
        status, _ = _exchange(sock_path, b"GET /health HTTP/1.1\r\n\r\n", uid=1001)
        assert status == 503
        assert _get(sock_path, "/health")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_slow_loris_is_cut_off_with_408(api: MemoryAuditSink, sock_path: Path) -> None:
    with _connect(sock_path) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        answer = b""
        for _ in range(40):
            with contextlib.suppress(OSError):
                sock.sendall(b"X")
            time.sleep(0.1)
            with contextlib.suppress(BlockingIOError):
                while chunk := sock.recv(4096, socket.MSG_DONTWAIT):
                    answer += chunk
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request not received in time"' in answer
    assert time.monotonic() - began < 3


def test_refusal_log_lines_are_rate_limited(api: MemoryAuditSink, sock_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="orchestrator.daemon.server"):
        for n in range(40):
            assert _exchange(sock_path, b"", uid=1000 + 1000 * (n + 1))[0] == 403
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 10
    assert all(line.startswith("API connection from uid ") for line in lines)
    assert len(api.records) == 10


# -- hostile session files: the API and `vmrepair sessions` --------------------------------------------

def _plant(kind: str, meta: Path, tmp_path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(meta)
    elif kind == "deep-list":
        meta.write_text("[" * 200_000)
    elif kind == "deep-object":
        meta.write_text('{"a":' * 100_000)
    elif kind == "huge":
        meta.write_bytes(b" " * (1024 * 1024 + 1))
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_text("{}")
        meta.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "directory":
        meta.mkdir()
    elif kind == "socket":  # bound under a short path (sun_path is 107 bytes), then moved in place
        with tempfile.TemporaryDirectory(dir=tmp_path.parents[1]) as short, \
                socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(Path(short, "s")))
            Path(short, "s").rename(meta)
    elif kind == "not-object":
        meta.write_text("[1, 2]")
    elif kind == "not-utf8":
        meta.write_bytes(b'{"id": "\xff"}')
    elif kind == "big-number":
        meta.write_text('{"n": ' + "9" * 5000 + "}")
    elif kind == "torn":
        meta.write_text('{"id": "torn')


_KINDS = {
    "fifo": "not a regular file (a FIFO)",
    "deep-list": "nested deeper than 64 levels",
    "deep-object": "nested deeper than 64 levels",
    "huge": "1048577 bytes, over the 1048576-byte cap",
    "symlink": "a symbolic link (not followed)",
    "directory": "not a regular file (a directory)",
    "socket": "not a regular file (a socket)",
    "not-object": "not a JSON object",
    "not-utf8": "not valid JSON",
    "big-number": "not valid JSON",
    "torn": "not valid JSON",
    "missing": "cannot read: No such file or directory",
}


@pytest.mark.parametrize("kind", list(_KINDS))
def test_api_lists_a_hostile_session_as_unreadable_without_hiding_the_others(
        api: MemoryAuditSink, sock_path: Path, sessions_dir: Path, tmp_path: Path, kind: str) -> None:
    (sessions_dir / BAD).mkdir()
    _plant(kind, sessions_dir / BAD / "session.json", tmp_path)
    began = time.monotonic()
    status, data = _get(sock_path, "/sessions")
    assert time.monotonic() - began < 3
    assert status == 200
    rows = data["sessions"]
    assert isinstance(rows, list)
    assert [(r["id"], r["status"]) for r in rows] == [(BAD, "unreadable"), (GOOD, "repaired")]
    assert str(rows[0]["unreadable"]).startswith(_KINDS[kind])


def test_sixteen_fifo_requests_leave_health_answering(api: MemoryAuditSink, sock_path: Path,
                                                      sessions_dir: Path) -> None:
    (sessions_dir / BAD).mkdir()
    os.mkfifo(sessions_dir / BAD / "session.json")
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(_get(sock_path, "/sessions")[0]))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert set(results) <= {200, 503}
    assert _get(sock_path, "/health")[0] == 200


@pytest.mark.parametrize("kind", ["fifo", "deep-list", "huge", "symlink", "not-utf8"])
def test_cli_sessions_lists_a_hostile_session_as_unreadable(
        cli: Callable[..., CliResult], sessions_dir: Path, tmp_path: Path, kind: str) -> None:
    (sessions_dir / BAD).mkdir()
    _plant(kind, sessions_dir / BAD / "session.json", tmp_path)
    result = cli("sessions", "--json")
    assert result.code == 0
    rows = json.loads(result.out)["sessions"]
    assert [(r["id"], r["status"]) for r in rows] == [(BAD, "unreadable"), (GOOD, "repaired")]
    assert f"warning: 1 session(s) could not be read; {BAD}: unreadable session.json: " in " ".join(
        result.err.split())


@pytest.mark.parametrize("kind", ["fifo", "deep-object", "directory"])
def test_cli_report_of_a_hostile_session_names_it(cli: Callable[..., CliResult], sessions_dir: Path,
                                                  tmp_path: Path, kind: str) -> None:
    (sessions_dir / BAD).mkdir()
    _plant(kind, sessions_dir / BAD / "session.json", tmp_path)
    result = cli("report", BAD)
    assert result.code == EXIT_STATE
    assert f"session {BAD}: unreadable session.json ({_KINDS[kind]})" in " ".join(result.err.split())


# -- SIGHUP: the configuration reloaded in-process -----------------------------------------------------

@pytest.fixture
def daemon(hostile_env: Path, sock_path: Path) -> Iterator[tuple[Daemon, MemoryAuditSink, Path]]:
    config = hostile_env / "config.yaml"
    env = {"VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(hostile_env / "state")}
    audit = MemoryAuditSink()
    state = DaemonState(target="local", policy="ask")
    running = load_settings(env)
    made = Daemon(settings=running.daemon, state=state, scheduler=Scheduler([], audit), audit=audit,
                  socket_path=sock_path, sessions_dir=hostile_env / "sessions",
                  reload_config=config_reloader(running, env=env))
    made.start()
    yield made, audit, config
    made.stop()


def _append(config: Path, text: str) -> None:
    config.write_text(config.read_text() + text)


@pytest.mark.parametrize(("change", "error"), [
    ("daemon: {policy: yolo}\n", "daemon.policy: Input should be 'auto-repair', 'ask' or 'detect-only'"),
    ("daemon: {max_connections: 0}\n", "daemon.max_connections: Input should be greater than or equal to 1"),
    ("daemon: {allowed_uids: [root]}\n", "daemon.allowed_uids[0]: Input should be a valid integer"),
    ("daemon: {typo: 1}\n", "daemon.typo: unknown key"),
    ("daemon: [\n", "malformed YAML"),
    (None, "file not found"),
    ("\xff", "not UTF-8"),
], ids=["bad-policy", "zero-connections", "uid-not-a-number", "unknown-key", "malformed-yaml", "missing",
        "not-utf8"])
def test_sighup_with_a_bad_config_keeps_the_running_one(
        daemon: tuple[Daemon, MemoryAuditSink, Path], sock_path: Path, caplog: pytest.LogCaptureFixture,
        change: str | None, error: str) -> None:
    running, audit, config = daemon
    if change is None:
        config.unlink()
    elif change == "\xff":
        config.write_bytes(b"\xff\xfe")
    else:
        _append(config, change)
    with caplog.at_level(logging.ERROR, logger="orchestrator.daemon.service"):
        assert running.reload() is False
    assert running.settings == DaemonSettings()
    assert f"SIGHUP: configuration refused, the running one is kept: {config}" in caplog.text
    assert error in caplog.text
    assert audit.records[-1]["event"] == "config_reload_refused"
    assert _get(sock_path, "/health")[0] == 200


@pytest.mark.parametrize(("change", "applied", "restart"), [
    ("daemon: {job_stall_s: 60, stop_grace_s: 1}\n", "daemon.stop_grace_s, daemon.job_stall_s", "nothing"),
    ("daemon: {allowed_uids: [1000]}\n", "daemon.allowed_uids", "nothing"),
    ("daemon: {request_timeout_s: 2}\n", "daemon.request_timeout_s", "nothing"),
    ("daemon: {policy: auto-repair, max_connections: 8}\n", "nothing",
     "daemon.policy, daemon.max_connections"),
    ("health: {interval_s: 5}\n", "nothing", "health"),
    ("", "nothing", "nothing"),
], ids=["live-timers", "allowed-uids", "request-timeout", "restart-only", "other-section", "unchanged"])
def test_sighup_with_a_valid_config_applies_it(
        daemon: tuple[Daemon, MemoryAuditSink, Path], caplog: pytest.LogCaptureFixture, change: str,
        applied: str, restart: str) -> None:
    running, audit, config = daemon
    _append(config, change)
    with caplog.at_level(logging.INFO, logger="orchestrator.daemon.service"):
        assert running.reload() is True
    assert f"SIGHUP: reloaded {config}: applied {applied}; needs a restart to apply: {restart}" in caplog.text
    assert audit.records[-1]["event"] == "config_reloaded"
    assert audit.records[-1]["status"] == "ok"


# -- the client (`vmrepair status`) against hostile servers --------------------------------------------

@pytest.fixture
def fake_daemon(sock_path: Path) -> Iterator[Callable[[Callable[[socket.socket], None]], None]]:
    sock_path.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(8)
    listener.settimeout(0.1)
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def serve(answer: Callable[[socket.socket], None]) -> None:
        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(5)
                    conn.recv(65536)
                    answer(conn)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)

    yield serve
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    listener.close()


def _trickle(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\n\r\n" + b" " * 1000:
        conn.send(bytes([byte]))
        time.sleep(0.2)


def _flood(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    for _ in range(MAX_RESPONSE_BYTES // 65536 + 8):
        conn.sendall(b" " * 65536)


def test_client_gives_up_on_a_trickling_daemon_at_its_deadline(fake_daemon: Callable[..., None],
                                                               sock_path: Path) -> None:
    fake_daemon(_trickle)
    began = time.monotonic()
    with pytest.raises(DaemonError) as caught:
        DaemonClient(sock_path, timeout=1).get("/health")
    assert time.monotonic() - began < 2.5
    assert caught.value.message == f"the daemon on {sock_path} did not answer /health within 1 s"
    assert caught.value.remedy == "check `systemctl status vmrepair` and its journal"


@pytest.mark.parametrize(("answer", "message"), [
    (_flood, f"answered /health with more than {MAX_RESPONSE_BYTES} bytes"),
    (lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"), "sent a malformed answer to /health"),
    (lambda conn: None, "closed the connection without an answer to /health"),
    (lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n[/x] not json"),
     "answered /health with something that is not JSON"),
    (lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 100_000),
     "answered /health with something that is not JSON"),
    (lambda conn: conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n{}"), "refused this user"),
], ids=["flood", "not-http", "hang-up", "markup-garbage", "deep-json", "forbidden"])
def test_status_against_a_hostile_daemon_exits_16_naming_the_socket(
        cli: Callable[..., CliResult], fake_daemon: Callable[..., None], sock_path: Path,
        answer: Callable[[socket.socket], None], message: str) -> None:
    fake_daemon(answer)
    result = cli("status")
    assert result.code == EXIT_DAEMON
    assert f"the daemon on {sock_path} {message}" in " ".join(result.err.split())
