"""Fixtures for agent tests: a RemoteAgent over LocalTransport whose ``remote_dir`` and every path it
works on live under ``tmp_path``, and the agent script imported as a module for in-process calls."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.remote import vmrepair_agent
from orchestrator.transport.local import LocalTransport

#: Debian 12's interpreter (3.11.2, no tarfile extraction filters) when this host has it, so the
#: tests prove the script runs there; otherwise the interpreter running the tests.
DEBIAN_PYTHON = "/usr/bin/python3"
PYTHON = DEBIAN_PYTHON if Path(DEBIAN_PYTHON).exists() else sys.executable


@pytest.fixture
def agent_python() -> str:
    """The interpreter the tests run the agent script with (see PYTHON)."""
    return PYTHON


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def agent(remote_dir: Path) -> RemoteAgent:
    return RemoteAgent(LocalTransport(command_timeout=30), timeout=30, remote_dir=str(remote_dir),
                       python=PYTHON)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh directory standing in for the part of a host's filesystem a test works on."""
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def call(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Call the agent script in-process: ``call("op", arg=...)`` returns its answer dict.

    Faster than a subprocess, and lets a test shrink the script's caps with monkeypatch.
    """
    work = tmp_path / "inproc"
    work.mkdir()

    def invoke(op: str, **args: Any) -> dict[str, Any]:
        return vmrepair_agent.handle({"op": op, "args": args}, work_dir=str(work))

    return invoke

@pytest.fixture
def archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """apt's archive cache of the agent's .deb readers (deb_meta, deb_file): a temporary directory."""
    path = tmp_path / "archives"
    path.mkdir()
    monkeypatch.setattr(vmrepair_agent, "DEB_ARCHIVES", str(path))
    # dpkg's lists of this machine must not decide what a test's .deb ships (an empty info directory:
    # no .list, the whole data.tar is read), nor a read of another test linger in the process.
    (tmp_path / "info").mkdir()
    monkeypatch.setattr(vmrepair_agent, "DPKG_INFO", str(tmp_path / "info"))
    monkeypatch.setattr(vmrepair_agent, "DEB_MEMBERS", {})
    return path
