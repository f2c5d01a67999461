"""sampleapp, the stand-in vital service of the Debian 12 template (images/debian-12/overlay).

Most tests run it the way systemd does, as ``python3 -m sampleapp`` in a subprocess, on an
ephemeral port (SAMPLEAPP_PORT=0) with the interaction log in a temporary directory.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

APP_ROOT = Path(__file__).resolve().parents[3] / "images/debian-12/overlay/opt/sampleapp"
STARTUP_TIMEOUT = 20.0
LISTENING = re.compile(r"listening on (?P<host>\S+):(?P<port>\d+),")


def _env(log: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLEAPP_") and k != "NOTIFY_SOCKET"}
    env.update(
        PYTHONPATH=str(APP_ROOT),
        PYTHONDONTWRITEBYTECODE="1",  # keep __pycache__ out of the overlay
        SAMPLEAPP_PORT="0",
        SAMPLEAPP_LOG=str(log),
    )
    env.update(extra)
    return env


def _run_once(log: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run sampleapp to completion (for refusals and --check)."""
    return subprocess.run(
        [sys.executable, "-B", "-m", "sampleapp", *args],
        env=_env(log, **extra),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )


@dataclass
class App:
    proc: subprocess.Popen[str]
    log: Path
    port: int = 0
    stderr_lines: list[str] = field(default_factory=list)

    def request(self, method: str, path: str) -> tuple[int, dict[str, Any], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        body = json.loads(raw) if raw else {}
        return resp.status, body, ctype

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        status, body, _ = self.request("GET", path)
        return status, body

    def log_records(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8")
        assert text.endswith("\n"), "every appended entry ends with a newline"
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Any]:
    started: list[tuple[App, threading.Thread]] = []

    def start(log: Path | None = None, **extra: str) -> App:
        log = log or tmp_path / "state" / "interactions.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-B", "-m", "sampleapp"],
            env=_env(log, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        app = App(proc=proc, log=log)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                app.stderr_lines.append(line)
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        started.append((app, reader))
        while True:
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                pytest.fail("sampleapp did not report that it is listening")
            if line is None:
                pytest.fail(f"sampleapp exited early: {''.join(app.stderr_lines)}")
            match = LISTENING.search(line)
            if match:
                app.port = int(match["port"])
                return app

    yield start

    for app, reader in started:
        if app.proc.poll() is None:
            app.proc.terminate()
        try:
            app.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.proc.kill()
            app.proc.wait()
        reader.join(timeout=5)
        assert app.proc.stderr is not None
        app.proc.stderr.close()


@pytest.fixture
def sampleapp_pkg(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The package imported in-process from the overlay (without writing bytecode there)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(APP_ROOT))
    return importlib.import_module("sampleapp")


def _write_log(path: Path, lines: list[bytes]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(data)
    return data


# --- serving ---------------------------------------------------------------------------------


def test_health_and_ready_answer_200_json(start_app: Any) -> None:
    app = start_app()
    status, body, ctype = app.request("GET", "/health")
    assert (status, body) == (200, {"status": "ok"})
    assert ctype == "application/json"
    status, body = app.get("/ready")
    # The /health request above is already in the log.
    assert (status, body) == (200, {"ready": True, "log_lines": 1})


def test_each_request_appends_exactly_one_json_line(start_app: Any) -> None:
    app = start_app()
    requests = [("GET", "/health", 200), ("GET", "/ready", 200), ("GET", "/nope?x=1", 404)]
    for count, (method, path, status) in enumerate(requests, start=1):
        got, _, _ = app.request(method, path)
        assert got == status
        records = app.log_records()
        assert len(records) == count
        last = records[-1]
        assert set(last) == {"ts", "method", "path", "status", "client"}
        assert (last["method"], last["path"], last["status"]) == (method, path, status)
        assert last["client"] == "127.0.0.1"
        assert datetime.fromisoformat(last["ts"]).utcoffset() is not None


def test_unknown_paths_are_404_and_logged(start_app: Any) -> None:
    app = start_app()
    assert app.get("/") == (404, {"error": "not found"})
    assert app.get("/health/extra")[0] == 404
    assert [r["status"] for r in app.log_records()] == [404, 404]


def test_other_methods_on_known_paths_are_refused(start_app: Any) -> None:
    app = start_app()
    status, body, _ = app.request("POST", "/health")
    assert status == 405
    assert body == {"error": "method not allowed"}
    assert app.request("HEAD", "/health")[0] == 200
    assert [(r["method"], r["status"]) for r in app.log_records()] == [("POST", 405), ("HEAD", 200)]


def test_concurrent_requests_produce_only_whole_lines(start_app: Any) -> None:
    app = start_app()
    threads, per_thread = 8, 25
    failures: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in range(per_thread):
                path = f"/health?t={n}&i={i}&pad={'x' * (n * 97 % 400)}" if i % 2 else "/ready"
                assert app.get(path)[0] == 200
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not failures, failures
    raw = app.log.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == threads * per_thread
    records = [json.loads(line) for line in lines]  # raises if any line is torn
    assert all(isinstance(r, dict) and r["status"] == 200 for r in records)
    assert app.get("/ready") == (200, {"ready": True, "log_lines": threads * per_thread})


# --- startup and the interaction log ----------------------------------------------------------


def test_starts_with_missing_log_and_creates_it_on_first_write(start_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "fresh" / "interactions.jsonl"
    app = start_app(log)
    assert not log.exists()
    assert app.get("/ready") == (200, {"ready": True, "log_lines": 0})
    assert len(app.log_records()) == 1
    assert "(0 entries)" in "".join(app.stderr_lines)


def test_starts_with_empty_log(start_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "empty.jsonl"
    log.write_bytes(b"")
    app = start_app(log)
    assert app.get("/ready") == (200, {"ready": True, "log_lines": 0})


def test_existing_entries_are_counted_and_kept(start_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "interactions.jsonl"
    original = _write_log(log, [b'{"n": 1}', b"", b'{"n": 2}', b"   ", b'{"n": 3}'])
    app = start_app(log)
    assert app.get("/ready") == (200, {"ready": True, "log_lines": 3})
    data = log.read_bytes()
    assert data.startswith(original)
    assert len(app.log_records()) == 4


def test_last_line_without_newline_is_accepted_and_not_glued_to(start_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "interactions.jsonl"
    log.write_bytes(b'{"n": 1}\n{"n": 2}')
    app = start_app(log)
    assert app.get("/ready") == (200, {"ready": True, "log_lines": 2})
    records = app.log_records()
    assert records[:2] == [{"n": 1}, {"n": 2}]
    assert records[2]["path"] == "/ready"


def test_log_deleted_while_running_is_recreated(start_app: Any) -> None:
    app = start_app()
    app.get("/health")
    app.log.unlink()
    assert app.get("/health")[0] == 200
    assert len(app.log_records()) == 1


CORRUPTIONS = {
    "truncated-object": (b'{"ts": "2024-01-01T00:00:00", "method": "GET"', "is not valid JSON"),
    "missing-comma": (b'{"method": "GET" "path": "/health"}', "Expecting ',' delimiter"),
    "array": (b"[1, 2, 3]", "is not a JSON object"),
    "bare-string": (b'"hello"', "is not a JSON object"),
    "invalid-utf8": (b'{"path": "\xff\xfe"}', "is not valid UTF-8"),
    "nul-bytes": (b"\x00\x00\x00\x00", "is not valid JSON"),
}


@pytest.mark.parametrize("bad_line", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_refuses_to_start_on_a_corrupt_middle_line(tmp_path: Path, bad_line: str) -> None:
    content, reason = CORRUPTIONS[bad_line]
    log = tmp_path / "interactions.jsonl"
    good = b'{"ts": "2024-01-01T00:00:00+00:00", "method": "GET", "path": "/health"}'
    before = _write_log(log, [good, good, b"", good, content, good, good])

    result = _run_once(log)

    assert result.returncode == 3, result.stderr
    message = result.stderr.strip()
    assert message.startswith("sampleapp: refusing to start:")
    assert f"{log} line 5 " in message  # physical line number: blank lines count
    assert reason in message
    assert "repair or quarantine it" in message
    assert log.read_bytes() == before, "a refused start must not touch the log"


def test_refusal_message_matches_the_documented_format(tmp_path: Path) -> None:
    log = tmp_path / "interactions.jsonl"
    _write_log(log, [b'{"a": 1}'] * 16 + [b'{"ts": "x", "method": "GET" "path": "/"}'])
    result = _run_once(log)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        f"sampleapp: refusing to start: {log} line 17 is not valid JSON "
        "(Expecting ',' delimiter: line 1 column 29); repair or quarantine it"
    )


def test_unreadable_log_is_a_runtime_error_not_corruption(tmp_path: Path) -> None:
    log = tmp_path / "interactions.jsonl"
    log.mkdir()  # reading a directory fails with an OSError
    result = _run_once(log)
    assert result.returncode == 1
    assert "cannot read interaction log" in result.stderr


def test_check_mode_verifies_without_serving(tmp_path: Path) -> None:
    log = tmp_path / "interactions.jsonl"
    _write_log(log, [b'{"a": 1}', b'{"a": 2}'])
    ok = _run_once(log, "--check")
    assert ok.returncode == 0
    assert "sound (2 entries)" in ok.stderr
    _write_log(log, [b'{"a": 1}', b"{oops"])
    bad = _run_once(log, "--check")
    assert bad.returncode == 3
    assert "line 2" in bad.stderr


def test_version_flag(sampleapp_pkg: ModuleType, tmp_path: Path) -> None:
    result = _run_once(tmp_path / "log.jsonl", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sampleapp {sampleapp_pkg.__version__}"


@pytest.mark.parametrize("port", ["http", "-1", "70000"])
def test_bad_port_setting_exits_2(tmp_path: Path, port: str) -> None:
    result = _run_once(tmp_path / "log.jsonl", SAMPLEAPP_PORT=port)
    assert result.returncode == 2
    assert "SAMPLEAPP_PORT" in result.stderr


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_once(tmp_path / "log.jsonl", SAMPLEAPP_PORT=str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_sigterm_stops_cleanly(start_app: Any) -> None:
    app = start_app()
    app.proc.terminate()
    assert app.proc.wait(timeout=10) == 0


def test_notifies_systemd_when_ready(start_app: Any, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(STARTUP_TIMEOUT)
        app = start_app(NOTIFY_SOCKET=str(sock_path))
        message = sock.recv(4096).decode()
    assert "READY=1" in message.splitlines()
    assert f"127.0.0.1:{app.port}" in message


def test_no_per_request_output_on_stderr(start_app: Any) -> None:
    app = start_app()
    for _ in range(5):
        app.get("/health")
    app.get("/missing")
    app.proc.terminate()
    app.proc.wait(timeout=10)
    noise = [line for line in app.stderr_lines if "/health" in line or "/missing" in line]
    assert noise == []


# --- modules in-process --------------------------------------------------------------------------


def test_config_defaults(sampleapp_pkg: ModuleType) -> None:
    config = importlib.import_module("sampleapp.config")
    cfg = config.from_env({})
    assert cfg.port == 8080
    assert cfg.bind == "127.0.0.1"
    assert cfg.log_path == Path("/var/lib/sampleapp/interactions.jsonl")
    with pytest.raises(config.ConfigError):
        config.from_env({"SAMPLEAPP_LOG": "relative/path.jsonl"})


def test_version_is_pinned(sampleapp_pkg: ModuleType) -> None:
    assert sampleapp_pkg.__version__ == "1.4.2"


def test_journal_append_is_one_line_per_record(sampleapp_pkg: ModuleType, tmp_path: Path) -> None:
    journal_mod = importlib.import_module("sampleapp.journal")
    journal = journal_mod.Journal(tmp_path / "j.jsonl")
    assert journal.verify() == 0
    journal.append({"path": "/with\nnewline", "unicode": "é"})
    journal.append({"n": 2})
    lines = (tmp_path / "j.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(x) for x in lines[:-1]] == [{"path": "/with\nnewline", "unicode": "é"}, {"n": 2}]
    assert journal.entries == 2
    assert journal_mod.Journal(tmp_path / "j.jsonl").verify() == 2


def test_journal_corruption_error_carries_line_and_reason(sampleapp_pkg: ModuleType, tmp_path: Path) -> None:
    journal_mod = importlib.import_module("sampleapp.journal")
    log = tmp_path / "j.jsonl"
    _write_log(log, [b"{}", b"{}", b"not json"])
    with pytest.raises(journal_mod.CorruptLogError) as info:
        journal_mod.Journal(log).verify()
    assert info.value.lineno == 3
    assert info.value.path == log
    assert info.value.problem.startswith("is not valid JSON (")


def test_package_uses_only_the_standard_library() -> None:
    import ast

    for module in sorted((APP_ROOT / "sampleapp").glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in {"sampleapp", "__future__"}, (
                    f"{module.name} imports {name}"
                )
