"""The agent's refusals as an error of the tree: :class:`AgentFailedError`, an
:class:`~orchestrator.errors.AgentError` that carries the agent's reason ``code``."""

from __future__ import annotations

from typing import Literal, get_args

from orchestrator.errors import AgentFailedError

#: Why the agent refused or failed an operation (the ``code`` of an ``{"ok": false}`` answer).
AgentErrorCode = Literal["precondition", "not_found", "nospace", "invalid", "io"]
AGENT_ERROR_CODES: tuple[str, ...] = get_args(AgentErrorCode)

__all__ = ["AGENT_ERROR_CODES", "AgentErrorCode", "AgentFailedError"]
