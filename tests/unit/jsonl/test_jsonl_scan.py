"""The orchestrator's line scanner is the target agent's: same splits, plus a size snapshot."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.agent.remote import vmrepair_agent
from orchestrator.jsonl.scan import Line, scan


def _fd(tmp_path: Path, data: bytes) -> int:
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_scan_stops_at_the_snapshot_size(tmp_path: Path) -> None:
    fd = _fd(tmp_path, b'{"a":1}\n{"b":2}\n{"c":3}\n')
    try:
        lines = list(scan(fd, 12))
    finally:
        os.close(fd)
    assert lines == [Line(1, 0, 7, b'{"a":1}', True), Line(2, 8, 12, b'{"b"', False)]


def test_scan_drops_oversized_lines_and_matches_the_agent(tmp_path: Path) -> None:
    data = b'{"a":1}\n' + b"x" * 50 + b"\n\n" + b'{"z":0}'
    fd = _fd(tmp_path, data)
    try:
        lines = list(scan(fd, len(data), max_line=20))
        agent_lines = list(vmrepair_agent.scan_lines(fd, len(data), 20))
    finally:
        os.close(fd)
    assert [(ln.data, ln.start, ln.end, ln.has_newline) for ln in lines] == agent_lines
    assert [ln.data for ln in lines] == [b'{"a":1}', None, b"", b'{"z":0}']
    assert [ln.number for ln in lines] == [1, 2, 3, 4]
    assert lines[1].start == 8 and lines[1].end == 58
