"""The agent's check, on the target, that a fix package is the one that was validated (issue 13)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError

DOCUMENT = b'{"id":"pkg-1","operations":[]}'
DIGEST = hashlib.sha256(DOCUMENT).hexdigest()


def test_the_validated_document_passes(agent: RemoteAgent) -> None:
    agent.verify_package("pkg-1", DOCUMENT, DIGEST)   # through the real script, as on a target


def test_a_changed_document_is_refused_naming_package_and_both_digests(agent: RemoteAgent) -> None:
    changed = DOCUMENT.replace(b"[]", b'[{"op":"daemon_reload"}]')
    with pytest.raises(AgentFailedError) as info:
        agent.verify_package("pkg-1", changed, DIGEST)
    assert info.value.code == "precondition"
    assert (f"fix package 'pkg-1' changed since it was validated (sha256 "
            f"{hashlib.sha256(changed).hexdigest()}, expected {DIGEST}); refusing to apply it"
            ) in info.value.message


@pytest.mark.parametrize(("args", "message"), [
    ({"id": "", "sha256": DIGEST, "document_b64": ""}, "argument 'id' must be the package id"),
    ({"id": 7, "sha256": DIGEST, "document_b64": ""}, "argument 'id' must be the package id"),
    ({"id": "p", "sha256": DIGEST.upper(), "document_b64": ""}, "'sha256' must be a lowercase sha256"),
    ({"id": "p", "sha256": None, "document_b64": ""}, "'sha256' must be a lowercase sha256"),
    ({"id": "p", "sha256": DIGEST, "document_b64": "***"}, "'document_b64' is not valid base64"),
    ({"id": "p", "sha256": DIGEST}, "'document_b64' must be base64 text"),
])
def test_malformed_requests_are_invalid(call: Callable[..., dict[str, Any]], args: dict[str, Any],
                                        message: str) -> None:
    answer = call("verify_package", **args)
    assert answer["ok"] is False and answer["code"] == "invalid"
    assert message in answer["error"]


def test_in_process_answer_is_the_digest(call: Callable[..., dict[str, Any]]) -> None:
    answer = call("verify_package", id="pkg-1", sha256=DIGEST,
                  document_b64=base64.b64encode(DOCUMENT).decode())
    assert answer == {"ok": True, "result": {"sha256": DIGEST}}
