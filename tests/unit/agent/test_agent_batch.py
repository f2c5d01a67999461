"""Batched reads: one agent call answers several read-only requests (the detect stage's probes), each
answer handed out once and checked as a direct answer would be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.errors import AgentError
from orchestrator.transport.fake import FakeTransport
from tests.unit.agent.test_agent_client import _fake

USAGE = {"mount": "/", "size_bytes": 100, "used_bytes": 50, "avail_bytes": 50, "used_pct": 50.0,
         "inodes_total": 10, "inodes_used": 5, "inodes_pct": 50.0}


def _batch_then(answers: list[Any]) -> tuple[RemoteAgent, FakeTransport]:
    def answer(op: str) -> Any:
        assert op == "batch", f"unexpected direct call {op}"
        return {"answers": answers}
    return _fake(answer)


def test_a_prefetched_answer_is_used_once_without_another_call() -> None:
    agent, transport = _batch_then([{"ok": True, "result": USAGE}, {"ok": True, "result": USAGE}])
    agent.prefetch([("disk_usage", {"mount": "/"}), ("disk_usage", {"mount": "/"})])
    calls = len(transport.calls)
    assert agent.disk_usage("/").used_bytes == 50
    assert agent.disk_usage("/").used_bytes == 50
    assert len(transport.calls) == calls          # both answered from the batch
    with pytest.raises(AssertionError, match="unexpected direct call disk_usage"):
        agent.disk_usage("/")                     # the batch is spent: a real call again
    batch = next(json.loads(c.stdin or b"") for c in transport.calls if c.stdin)
    assert batch == {"op": "batch", "args": {"requests": [{"op": "disk_usage", "args": {"mount": "/"}}] * 2}}


def test_a_refusal_in_the_batch_is_raised_where_the_request_is_made() -> None:
    agent, _ = _batch_then([{"ok": False, "error": "gone", "code": "not_found"}])
    agent.prefetch([("jsonl_check", {"path": "/var/log/x.jsonl"})])
    with pytest.raises(AgentFailedError, match="agent jsonl_check: gone") as info:
        agent.jsonl_check("/var/log/x.jsonl")
    assert info.value.code == "not_found"


def test_a_prefetched_answer_gets_the_checks_of_a_direct_one() -> None:
    agent, _ = _batch_then([{"ok": True, "result": {**USAGE, "mount": "/srv"}}])
    agent.prefetch([("disk_usage", {"mount": "/"})])
    with pytest.raises(AgentError, match="usage is about '/srv'"):
        agent.disk_usage("/")


def test_only_reads_are_batched_and_a_short_answer_is_refused() -> None:
    agent, transport = _batch_then([])
    agent.prefetch([("write_file", {"path": "/etc/x"})])
    assert transport.calls == []                  # nothing batchable: no call at all
    with pytest.raises(AgentError, match="not one answer per request"):
        agent.prefetch([("disk_usage", {"mount": "/"})])


def test_discard_drops_what_was_not_used() -> None:
    agent, _ = _batch_then([{"ok": True, "result": USAGE}])
    agent.prefetch([("disk_usage", {"mount": "/"})])
    agent.discard_prefetched()
    with pytest.raises(AssertionError, match="unexpected direct call"):
        agent.disk_usage("/")


def test_the_real_script_answers_a_batch_like_direct_calls(agent: RemoteAgent, tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_text('{"id": 1}\n')
    direct = agent.jsonl_check(str(log)), agent.disk_usage(str(tmp_path)).mount
    agent.prefetch([("jsonl_check", {"path": str(log)}), ("disk_usage", {"mount": str(tmp_path)}),
                    ("write_file", {"path": str(log)})])
    assert (agent.jsonl_check(str(log)), agent.disk_usage(str(tmp_path)).mount) == direct


def test_the_real_script_refuses_a_write_inside_a_batch(agent: RemoteAgent, tmp_path: Path) -> None:
    answer = agent._call("batch", {"requests": [{"op": "remove_file", "args": {"path": str(tmp_path)}}]})
    assert answer["answers"][0]["ok"] is False and answer["answers"][0]["code"] == "invalid"
    assert tmp_path.exists()
    with pytest.raises(AgentFailedError, match="requests must be a list of 1 to 64 requests"):
        agent._call("batch", {"requests": []})


def test_more_requests_than_the_agent_takes_go_in_several_batches() -> None:
    from orchestrator.agent import requests as agent_requests
    from orchestrator.agent.remote import vmrepair_agent

    assert agent_requests.MAX_BATCH == vmrepair_agent.MAX_BATCH
    sizes: list[int] = []

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] in ("install", "sha256sum"):
            return _fake({})[1].handler(argv, stdin)
        requests = json.loads(stdin or b"{}")["args"]["requests"]
        sizes.append(len(requests))
        answers = [{"ok": True, "result": USAGE}] * len(requests)
        return 0, json.dumps({"ok": True, "result": {"answers": answers}}).encode(), b""

    agent = RemoteAgent(FakeTransport(handler, host="t"), timeout=7.0)
    agent.prefetch([("disk_usage", {"mount": "/"})] * (agent_requests.MAX_BATCH * 2 + 3))
    assert sizes == [agent_requests.MAX_BATCH, agent_requests.MAX_BATCH, 3]
    calls = len(sizes)
    for _ in range(agent_requests.MAX_BATCH * 2 + 3):
        assert agent.disk_usage("/").used_pct == 50.0
    assert len(sizes) == calls
