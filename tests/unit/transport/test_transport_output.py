"""Untrusted command output: escaped, capped, and the same cleaning as the session store's."""

from __future__ import annotations

import pytest

from orchestrator.session.store import cap_text as session_cap_text
from orchestrator.transport.base import CommandResult
from orchestrator.transport.output import cap_output, cap_text, command_output

SAMPLES = ["plain", "tab\tand\nnewline", "\x1b[2Jclear", "bell\x07", "del\x7f", "é²٣", "\u202eRTL",
           "x" * 5000, "\x00" * 300]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("limit", [1, 8, 100, 4096])
def test_cap_text_cleans_exactly_like_the_session_store(text: str, limit: int) -> None:
    # The session store delegates to this one; the test keeps its default cap honest.
    assert cap_text(text, limit) == session_cap_text(text, limit)
    assert cap_text(text.encode(), limit) == session_cap_text(text.encode(), limit)


def test_cap_output_keeps_the_note_inside_the_limit() -> None:
    capped = cap_output("x" * 10_000, 256)
    assert len(capped) <= 256 and capped.endswith("more characters not kept]")
    assert cap_output("short", 256) == "short"


def test_command_output_is_stderr_then_stdout_cleaned() -> None:
    result = CommandResult(("x",), 1, b"out\x1b[0m\n", b"err\n")
    assert command_output(result) == "err\n\nout\\x1b[0m\n"
    assert command_output(CommandResult(("x",), 0, b"", b"  \n")) == ""
