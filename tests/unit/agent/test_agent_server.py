"""The agent's server mode: one interpreter answers every request of a client, over LocalTransport's
stream (the SSH transport's stream is exercised by the real-VM integration tests)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.server import AgentServer
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.transport.local import LocalTransport
from orchestrator.transport.stream import CommandStream
from tests.unit.agent.conftest import PYTHON


class CountingTransport(LocalTransport):
    """LocalTransport that remembers the streams it opened and counts one-shot runs of the agent."""

    def __init__(self) -> None:
        super().__init__(command_timeout=30)
        self.streams: list[CommandStream] = []
        self.agent_runs = 0

    def open_stream(self, argv: Sequence[str]) -> CommandStream:
        stream = super().open_stream(argv)
        self.streams.append(stream)
        return stream

    def run(self, argv: Sequence[str], **kwargs: object):  # type: ignore[no-untyped-def, override]
        if argv and argv[0] == PYTHON:
            self.agent_runs += 1
        return super().run(argv, **kwargs)  # type: ignore[arg-type]


class NoStreams(CountingTransport):
    def open_stream(self, argv: Sequence[str]) -> None:  # type: ignore[override]
        return None


def _agent(transport: LocalTransport, remote_dir: Path, timeout: float = 30) -> RemoteAgent:
    return RemoteAgent(transport, timeout=timeout, remote_dir=str(remote_dir), python=PYTHON)


def test_one_server_answers_every_request(tmp_path: Path, remote_dir: Path) -> None:
    (tmp_path / "f").write_text("x")
    transport = CountingTransport()
    agent = _agent(transport, remote_dir)
    for _ in range(5):
        assert agent.manifest([str(tmp_path / "f")]).by_path()[str(tmp_path / "f")].size == 1
    assert agent.disk_usage("/").used_pct > 0
    assert len(transport.streams) == 1
    assert transport.agent_runs == 0
    agent.close()
    assert not transport.streams[0].is_alive


def test_a_transport_without_streams_runs_one_process_per_request(tmp_path: Path, remote_dir: Path) -> None:
    transport = NoStreams()
    agent = _agent(transport, remote_dir)
    agent.disk_usage("/")
    agent.disk_usage("/")
    assert transport.agent_runs == 2


def test_a_server_killed_between_requests_is_replaced(remote_dir: Path) -> None:
    transport = CountingTransport()
    agent = _agent(transport, remote_dir)
    agent.disk_usage("/")
    first = transport.streams[0]
    os.killpg(first._proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    first._proc.wait()  # type: ignore[attr-defined]
    agent.disk_usage("/")
    assert len(transport.streams) == 2


def test_a_script_removed_from_the_host_is_uploaded_again(remote_dir: Path) -> None:
    """/run is a tmpfs: after a reboot the server cannot start until the script is back."""
    transport = CountingTransport()
    agent = _agent(transport, remote_dir)
    agent.disk_usage("/")
    agent.close()
    Path(agent.script_path).unlink()
    assert agent.disk_usage("/").used_pct > 0
    assert Path(agent.script_path).exists()


def test_a_hung_request_times_out_and_the_next_one_gets_a_new_server(remote_dir: Path) -> None:
    transport = CountingTransport()
    # Reads the request, never answers.
    hung = AgentServer(transport, [PYTHON, "-c", "import sys, time; sys.stdin.readline(); time.sleep(30)"])
    with pytest.raises(CommandTimeoutError, match="did not answer in time"):
        hung.exchange("manifest", b"{}", cap=100, timeout=0.5)
    assert not transport.streams[0].is_alive
    agent = _agent(transport, remote_dir)
    assert agent.disk_usage("/").used_pct > 0


def test_an_answer_over_its_cap_kills_the_server(remote_dir: Path) -> None:
    transport = CountingTransport()
    agent = _agent(transport, remote_dir)
    server = AgentServer(transport, [PYTHON, "-I", "-B", agent.script_path])
    agent.install()
    with pytest.raises(AgentError, match="larger than the 10 bytes allowed"):
        server.exchange("disk_usage", b'{"op":"disk_usage","args":{"mount":"/"}}', cap=10, timeout=30)
    assert not transport.streams[-1].is_alive


@pytest.mark.parametrize("answer", [b"x\n", b"12345678901234567890\n", b"-1\n", b"\xb2\n"])
def test_a_header_that_is_not_a_length_is_refused(tmp_path: Path, answer: bytes) -> None:
    script = tmp_path / "liar.py"
    script.write_text(f"import sys\nsys.stdin.readline()\nsys.stdout.buffer.write({answer!r})\n"
                      "sys.stdout.flush()\nsys.stdin.readline()\n")
    server = AgentServer(CountingTransport(), [PYTHON, str(script), "#"])
    with pytest.raises(AgentError, match=r"(not a length|longer than)"):
        server.exchange("manifest", b"{}", cap=1000, timeout=10)


def test_the_agent_script_serves_until_stdin_closes(tmp_path: Path, remote_dir: Path) -> None:
    agent = _agent(LocalTransport(), remote_dir)
    agent.install()
    proc = subprocess.run(
        [PYTHON, "-I", "-B", agent.script_path, "--serve"],
        input=b'{"op":"nope","args":{}}\n{"op":"disk_usage","args":{"mount":"/"}}\n',
        capture_output=True, check=True, timeout=30,
    )
    first_len, rest = proc.stdout.split(b"\n", 1)
    first, rest = rest[: int(first_len)], rest[int(first_len):]
    assert b"unknown op" in first
    second_len, second = rest.split(b"\n", 1)
    assert len(second) == int(second_len) and b'"ok":true' in second


def test_a_request_line_cut_off_is_answered_then_the_server_exits(remote_dir: Path) -> None:
    agent = _agent(LocalTransport(), remote_dir)
    agent.install()
    proc = subprocess.run([PYTHON, "-I", "-B", agent.script_path, "--serve"], input=b'{"op":',
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert b"cut off" in proc.stdout


def test_names_of_ids_are_not_remembered_from_one_request_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account created between two requests (useradd in the VM) is named in the second answer."""
    import io
    import json
    import pwd
    import sys
    from types import SimpleNamespace

    from orchestrator.agent.remote import vmrepair_agent

    target = tmp_path / "f"
    target.write_text("x")
    names = iter(["", "appsvc"])  # unknown at the first request, created before the second

    def getpwuid(uid: int) -> SimpleNamespace:
        name = next(names)
        if not name:
            raise KeyError(uid)
        return SimpleNamespace(pw_name=name)

    monkeypatch.setattr(pwd, "getpwuid", getpwuid)
    request = json.dumps({"op": "manifest", "args": {"paths": [str(target)]}}).encode() + b"\n"
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(request * 2)))
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=out))
    assert vmrepair_agent.serve(str(tmp_path)) == 0
    owners = [json.loads(body)["result"]["entries"][0]["owner"]
              for body in _frames(out.getvalue())]
    assert owners[1] == "appsvc"
    assert owners[0] != "appsvc"


def _frames(data: bytes) -> list[bytes]:
    frames = []
    while data:
        size, data = data.split(b"\n", 1)
        frames.append(data[: int(size)])
        data = data[int(size):]
    return frames


def test_a_sharing_client_uses_the_owner_s_server_with_its_own_timeout(remote_dir: Path) -> None:
    """The apply's client: no second interpreter, its own per-request deadline, and closing it leaves
    the owner's server answering."""
    transport = CountingTransport()
    owner = _agent(transport, remote_dir)
    owner.disk_usage("/")
    twin = owner.sharing(timeout=600)
    assert (twin.timeout, owner.timeout) == (600, 30)
    assert twin.disk_usage("/").used_pct > 0
    twin.close()
    assert owner.disk_usage("/").used_pct > 0
    assert len(transport.streams) == 1 and transport.streams[0].is_alive
    owner.close()
    assert not transport.streams[0].is_alive
