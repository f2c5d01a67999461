"""The agent's refusals as an error of the tree: :class:`AgentFailedError`, an
:class:`~orchestrator.errors.AgentError` that carries the agent's reason ``code``."""

from __future__ import annotations

from typing import Literal, get_args

from orchestrator.errors import AgentError

#: Why the agent refused or failed an operation (the ``code`` of an ``{"ok": false}`` answer).
AgentErrorCode = Literal["precondition", "not_found", "nospace", "invalid", "io"]
AGENT_ERROR_CODES: tuple[str, ...] = get_args(AgentErrorCode)


class AgentFailedError(AgentError):
    """The agent ran and answered ``ok: false``.

    ``code`` says why: ``precondition`` (the host changed since capture, e.g. a file's hash differs),
    ``not_found``, ``nospace``, ``invalid`` (refused: bad path, symlink in the way, ...) or ``io``.
    """

    def __init__(
        self, message: str, *, host: str, op: str, code: AgentErrorCode, remedy: str | None = None
    ) -> None:
        super().__init__(message, host=host, remedy=remedy)
        self.op = op
        self.code: AgentErrorCode = code
