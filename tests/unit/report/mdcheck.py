"""Checks on rendered Markdown shared by the report tests."""

from __future__ import annotations

import re

#: A pipe that separates table cells (not escaped with a backslash).
CELL_PIPE = re.compile(r"(?<!\\)\|")


def fenced_blocks(markdown: str) -> tuple[list[str], list[str]]:
    """(lines outside code blocks, bodies of code blocks); fails if a block is left open."""
    outside: list[str] = []
    bodies: list[str] = []
    fence: str | None = None
    body: list[str] = []
    for line in markdown.split("\n"):
        if fence is None:
            m = re.fullmatch(r"(`{3,})[a-z]*", line)
            if m:
                fence, body = m[1], []
            else:
                outside.append(line)
        elif re.fullmatch(rf"`{{{len(fence)},}}\s*", line):
            bodies.append("\n".join(body))
            fence = None
        else:
            body.append(line)
    assert fence is None, "a code block was left open"
    return outside, bodies
