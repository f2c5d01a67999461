"""Markdown escaping of untrusted text: fences that cannot be closed, caps that say what they cut."""

from __future__ import annotations

import pytest

from orchestrator.report.escape import (
    BLOCK_LIMIT,
    code,
    code_block,
    duration,
    excerpt,
    inline,
    table,
    timestamp,
)
from tests.unit.report.mdcheck import fenced_blocks


def test_inline_escapes_markdown_and_folds_lines() -> None:
    assert inline("a *b* _c_ [d](e) <f> `g` | h & ~i~ \\") == (
        "a \\*b\\* \\_c\\_ \\[d\\](e) \\<f\\> \\`g\\` \\| h \\& \\~i\\~ \\\\")
    assert inline("line1\n# heading\r\n\tline3") == "line1 # heading\\\\x0d line3"
    assert inline("") == "—"
    assert inline(None) == "—"
    assert inline({"a": [1]}) == '{"a": \\[1\\]}'


def test_inline_caps_and_shows_control_characters() -> None:
    text = inline("\x1b[31m" + "x" * 1000, limit=50)
    assert "\x1b" not in text
    assert text.startswith("\\\\x1b\\[31m")
    assert text.endswith("more characters not kept\\]")


@pytest.mark.parametrize(("value", "expected"), [
    ("nginx.service", "`nginx.service`"),
    ("a`b", "``a`b``"),
    ("`start", "`` `start ``"),
    ("x```y", "````x```y````"),
])
def test_code_span_delimiters_outnumber_backticks(value: str, expected: str) -> None:
    assert code(value) == expected


def test_code_span_in_a_table_escapes_pipes() -> None:
    assert code("a|b", in_table=True) == "`a\\|b`"
    assert code("a|b") == "`a|b`"


def test_code_block_cannot_be_closed_by_its_content() -> None:
    hostile = "before\n```\n# Injected heading\n``````````\nafter"
    block = code_block(hostile)
    assert block.startswith("```````````text\n")
    outside, bodies = fenced_blocks(block)
    assert bodies == [hostile]
    assert not any(line.startswith("#") for line in outside)


def test_code_block_caps_long_output_and_keeps_both_ends() -> None:
    text = "START" + "A" * 1_000_000 + "THE END"
    block = code_block(text)
    assert len(block) < BLOCK_LIMIT + 300
    assert "START" in block
    assert "THE END" in block
    cut = len(text) - BLOCK_LIMIT
    assert f"[... {cut:,} of {len(text):,} characters cut here ...]" in block
    assert f"_{cut:,} characters cut from the middle of this output._" in block


def test_excerpt_cleans_control_characters_without_cutting_more() -> None:
    body, cut = excerpt("\x00" * 100)
    assert (body, cut) == ("\\x00" * 100, 0)
    body, cut = excerpt(b"\xff\x1b[2Jok")
    assert (body, cut) == ("\ufffd\\x1b[2Jok", 0)


def test_table_and_formatters() -> None:
    assert table(["A", "B"], [["1", ""]]) == "| A | B |\n|---|---|\n| 1 |   |\n"
    assert [duration(v) for v in (0.42, 12.4, 125, 3725, "x", None, True)] == [
        "0.4 s", "12 s", "2 min 05 s", "1 h 02 min", "—", "—", "—"]
    assert timestamp("2026-01-02T03:04:05.678+00:00") == "2026-01-02T03:04:05Z"
    assert timestamp("<b>not a time</b>") == "\\<b\\>not a time\\</b\\>"
    assert timestamp(None) == "—"
