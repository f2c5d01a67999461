"""Fixtures for the daemon's unit tests (sockets live in tmp_path; nothing needs root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.daemon.state import DaemonState


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    """Where a test's API socket goes: ``tmp_path/run/api.sock`` (the daemon creates ``run``)."""
    path = tmp_path / "run" / "api.sock"
    # sun_path holds 107 bytes; pytest keeps tmp_path short, but say so if a basetemp breaks that.
    assert len(bytes(path)) <= 107, f"tmp_path too long for a unix socket: {path}"
    return path


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def state() -> DaemonState:
    return DaemonState(target="local", policy="ask")
