"""`vmrepair daemon` as a real process: READY/WATCHDOG/STOPPING, and SIGTERM/SIGINT stop it in seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.daemon.helpers import http_get, split_response


def _config(tmp_path: Path) -> Path:
    """No probes and no components (so no baseline either): the daemon must not touch this machine.
    The audit log goes to tmp_path, never to the host's /var/log/vmrepair."""
    config = tmp_path / "config.yaml"
    config.write_text("daemon:\n  policy: detect-only\n  detect_interval_s: 3600\n"
                      f"audit:\n  path: {tmp_path / 'audit.jsonl'}\n"
                      "watch:\n  extend_defaults: false\n  components: []\n  mounts: []\n")
    return config


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield path, sock


def _wait_for(sock: socket.socket, field: str, timeout: float) -> list[str]:
    """Datagrams received until one contains ``field`` (fails after ``timeout`` seconds)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if field in seen[-1].split("\n"):
            return seen
    pytest.fail(f"no {field} within {timeout} s; received {seen}")


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_daemon_process_notifies_and_stops_within_seconds(
        tmp_path: Path, sock_path: Path, notify_socket: tuple[Path, socket.socket], signo: int) -> None:
    config = _config(tmp_path)
    env = {**os.environ, "VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "state"),
           "VMREPAIR_SOCKET": str(sock_path), "NOTIFY_SOCKET": str(notify_socket[0]),
           "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "daemon", "--foreground"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(notify_socket[1], "READY=1", timeout=30)
        _wait_for(notify_socket[1], "WATCHDOG=1", timeout=5)
        status, _, _ = split_response(http_get(sock_path, "/ready"))
        assert status == 200
        began = time.monotonic()
        proc.send_signal(signo)
        _, stderr = proc.communicate(timeout=10)
        elapsed = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert elapsed < 5
    assert "STOPPING=1" in _wait_for(notify_socket[1], "STOPPING=1", timeout=1)[-1]
    assert f"received {signal.Signals(signo).name}, stopping" in stderr.decode()
    assert not sock_path.exists()


def test_daemon_that_cannot_start_says_why(tmp_path: Path, sock_path: Path) -> None:
    config = _config(tmp_path)
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("not a socket")
    env = {**os.environ, "VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "state"),
           "VMREPAIR_SOCKET": str(sock_path)}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run([sys.executable, "-m", "orchestrator.daemon", "--foreground"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 16
    assert (f"cannot run the daemon: {sock_path} is a regular file; refusing to replace it with the "
            "daemon's socket") in proc.stderr
    assert sock_path.read_text() == "not a socket"


def test_sighup_reloads_the_config_and_never_kills_the_daemon(
        tmp_path: Path, sock_path: Path, notify_socket: tuple[Path, socket.socket]) -> None:
    """Regression (issue 13 item 4): SIGHUP killed the daemon (exit 129) without a log line or an
    audit record, and left its socket behind."""
    config = _config(tmp_path)
    good = config.read_text()
    env = {**os.environ, "VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "state"),
           "VMREPAIR_SOCKET": str(sock_path), "NOTIFY_SOCKET": str(notify_socket[0])}
    env.pop("WATCHDOG_USEC", None)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.daemon", "--foreground"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(notify_socket[1], "READY=1", timeout=30)
        config.write_text(good.replace("policy: detect-only", "policy: nonsense"))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        config.unlink()
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        config.write_text(good.replace("detect_interval_s: 3600",
                                       "detect_interval_s: 3600\n  job_stall_s: 60"))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert split_response(http_get(sock_path, "/health"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert "SIGHUP: configuration refused, the running one is kept" in text
    assert f"SIGHUP: configuration refused, the running one is kept: {config}: daemon.policy" in text
    assert f"SIGHUP: configuration refused, the running one is kept: {config}: file not found" in text
    assert (f"SIGHUP: reloaded {config}: applied daemon.job_stall_s; needs a restart to apply: nothing"
            in text)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["event"] for r in audit if r["event"].startswith("config_")] == [
        "config_reload_refused", "config_reload_refused", "config_reloaded"]
    assert not sock_path.exists()
