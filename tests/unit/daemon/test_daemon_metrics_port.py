"""``metrics.listen``: /metrics over loopback TCP, served by the daemon beside its unix socket."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.daemon import DaemonSettings
from orchestrator.daemon.metrics import DaemonCollector, daemon_registry
from orchestrator.daemon.metrics_port import MetricsPortServer, bind_metrics_port
from orchestrator.daemon.notify import SystemdNotifier
from orchestrator.daemon.scheduler import Scheduler
from orchestrator.daemon.service import Daemon
from orchestrator.daemon.state import DaemonState
from orchestrator.errors import DaemonError
from orchestrator.metrics.collector import PersistedCollector, new_registry
from tests.unit.daemon.helpers import http_get, split_response
from tests.unit.metrics.populated import populate


def tcp_get(address: tuple[str, int], raw: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return split_response(b"".join(chunks))


@pytest.fixture
def server(state: DaemonState, tmp_path: Path) -> Iterator[MetricsPortServer]:
    registry = daemon_registry(state, PersistedCollector(populate(tmp_path / "state")), rss=lambda: None)
    port = MetricsPortServer(bind_metrics_port("127.0.0.1", 0), registry, request_timeout_s=2.0)
    port.start()
    yield port
    port.close()


def test_metrics_answer_on_an_ephemeral_loopback_port(server: MetricsPortServer) -> None:
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0
    status, headers, body = tcp_get(server.address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"vmrepair_daemon_ready", "vmrepair_repairs", "vmrepair_quarantined_components"} <= names


@pytest.mark.parametrize(("request_line", "status", "error"), [
    (b"GET /issues HTTP/1.1", 404, "only /metrics is served on this port"),
    (b"POST /metrics HTTP/1.1", 405, "POST is not allowed"),
])
def test_only_get_metrics_is_served(server: MetricsPortServer, request_line: bytes, status: int,
                                    error: str) -> None:
    got, _, body = tcp_get(server.address, request_line + b"\r\nHost: x\r\n\r\n")
    assert (got, error in body.decode()) == (status, True)


def test_a_silent_client_is_dropped_at_the_deadline(state: DaemonState) -> None:
    registry = new_registry(DaemonCollector(state))
    port = MetricsPortServer(bind_metrics_port("127.0.0.1", 0), registry, request_timeout_s=0.3)
    port.start()
    try:
        status, _, body = tcp_get(port.address, b"GET /metr")
    finally:
        port.close()
    assert (status, b"request not received in time" in body) == (408, True)


def test_a_taken_port_is_a_daemon_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(DaemonError) as caught:
            bind_metrics_port("127.0.0.1", taken)
    assert caught.value.message.startswith(f"cannot serve metrics on 127.0.0.1:{taken}: ")
    assert caught.value.remedy == "choose another metrics.listen port, or stop what holds this one"


def test_the_daemon_serves_the_port_and_the_socket_and_closes_the_port_at_stop(
        sock_path: Path, tmp_path: Path, audit: MemoryAuditSink) -> None:
    with socket.socket() as probe:  # a free port, released before the daemon binds it
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    state = DaemonState(target="local", policy="ask")
    registry = daemon_registry(state, PersistedCollector(populate(tmp_path / "state")), rss=lambda: None)
    daemon = Daemon(settings=DaemonSettings(), state=state, scheduler=Scheduler([], audit), audit=audit,
                    socket_path=sock_path, sessions_dir=tmp_path / "state" / "sessions",
                    notifier=SystemdNotifier(env={}), metrics=registry, metrics_listen=("127.0.0.1", free))
    daemon.start()
    try:
        status, _, tcp_body = tcp_get(("127.0.0.1", free), b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200
        status, _, unix_body = split_response(http_get(sock_path, "/metrics"))
        assert status == 200
        for body in (tcp_body, unix_body):
            assert b"vmrepair_open_issues{" in body
    finally:
        daemon.stop()
    with contextlib.closing(socket.socket()) as late, pytest.raises(ConnectionRefusedError):
        late.connect(("127.0.0.1", free))
