"""No byte lost (issue 13): whatever a JSON-lines file holds, a repair puts every byte of it either in
the repaired file or in the quarantine, and keeps the good lines in their order. Proved on both
repairs that share the salvage code: ``orchestrator.jsonl.repair`` here, the target agent's
``jsonl_repair`` there.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.agent.remote import vmrepair_agent as agent
from orchestrator.errors import AuditError
from orchestrator.jsonl import RepairAction, repair
from orchestrator.jsonl.scan import judge

#: Lines longer than this count as oversized in these tests, so "huge lines" stay cheap.
SMALL_CAP = 64
CLOSERS = [closer.encode() for closer in agent.CLOSERS]

#: Bits of what crashed writers, full disks and hostile programs leave in logs.
PIECES = [b'{"id":1}', b'{"id": 2, "s": "\xc3\xa9"}', b"X", b"[1,2]", b"\x00", b"\x00\x00\x00", b"\r", b" ",
          b"\t", b"\xff\xfe", b"\xc3", b'{"a":', b'{"b":"tor', b"{", b"}", b'"', b"1", b"null", b"{}", b"\n",
          b"\x0c", b"\n\n", b"[", b'{"n":' + b"[" * 40, b"9" * 80]
CONTENT = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=40).map(b"".join),
    st.binary(max_size=300),
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGRESSIONS = [b'{"id":1}X{"id":2}\n', b'{"id":3}[1,2]{"id":4}\n', b'{"id":1}X{"id":2}',
               b'\x00\x00{"g": 7}\x00\n{"a":1} trailing\n']


def input_lines(data: bytes) -> list[bytes]:
    """The lines as the scanner splits them: a last line without newline counts, an empty tail not."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def assert_accounted(data: bytes, written: list[bytes], quarantined: list[bytes]) -> None:
    """Each input line is, in order, exactly an interleaving of the next records written (a record may
    end with a closer the repair added) and the next quarantined pieces: no byte lost or reordered."""
    lines = input_lines(data)
    # Depth-first search over (line, position in it, records used, pieces used, line touched yet).
    todo, seen = [(0, 0, 0, 0, False)], set()
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        li, pos, oi, qi, used = state
        if li == len(lines):
            if oi == len(written) and qi == len(quarantined):
                return
            continue
        line = lines[li]
        if pos == len(line) and used:
            todo.append((li + 1, 0, oi, qi, False))
        if oi < len(written):
            record = written[oi]
            for source in [record] + [record[:-len(c)] for c in CLOSERS if record.endswith(c)]:
                if (source or not line) and line.startswith(source, pos):
                    todo.append((li, pos + len(source), oi + 1, qi, True))
        if qi < len(quarantined):
            piece = quarantined[qi]
            if (piece or not line) and line.startswith(piece, pos):
                todo.append((li, pos + len(piece), oi, qi + 1, True))
    raise AssertionError(("no byte-exact account", data, written, quarantined))


def assert_good_lines_kept_in_order(data: bytes, written: list[bytes]) -> None:
    good = [line for line in input_lines(data)
            if len(line) <= SMALL_CAP and judge(line).kind is None]
    it = iter(written)
    assert all(any(line == out for out in it) for line in good), (good, written)


def written_records(path: Path) -> list[bytes]:
    out = path.read_bytes()
    assert out == b"" or out.endswith(b"\n")
    return input_lines(out) if out else []


def run_orchestrator_repair(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.jsonl"
        path.write_bytes(data)
        try:
            done = repair(path, audit=False, max_line=SMALL_CAP)
        except AuditError as exc:
            assert "nothing good to keep" in exc.message, exc.message
            assert path.read_bytes() == data  # untouched
            assert [p.name for p in Path(tmp).iterdir()] == ["app.jsonl"]
            return
        if done.action is not RepairAction.REPAIRED:  # it verified, or was empty: left as it was
            assert path.read_bytes() == data
            return
        entries = [json.loads(line) for line in done.quarantine.read_bytes().splitlines()] \
            if done.quarantine else []
        pieces = [base64.b64decode(e["raw_base64"]) for e in entries]
        # The quarantine says exactly where each piece was, in order.
        for entry, piece in zip(entries, pieces, strict=True):
            assert data[entry["offset"]:entry["offset"] + entry["length"]] == piece
        offsets = [e["offset"] for e in entries]
        assert offsets == sorted(offsets)
        assert done.quarantined_bytes == sum(map(len, pieces))
        assert (done.quarantined, done.fragments) == (
            sum(e["kind"] != "fragment" for e in entries), sum(e["kind"] == "fragment" for e in entries))
        written = written_records(path)
        assert_accounted(data, written, pieces)
        assert_good_lines_kept_in_order(data, written)


def run_agent_repair(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(agent, "MAX_LINE", SMALL_CAP):
        path = Path(tmp) / "app.jsonl"
        path.write_bytes(data)
        answer = agent.handle({"op": "jsonl_repair", "args": {"path": str(path)}}, work_dir=tmp)
        if not answer["ok"]:
            assert "nothing good to keep" in answer["error"], answer
            assert path.read_bytes() == data
            assert [p.name for p in Path(tmp).iterdir()] == ["app.jsonl"]
            return
        result = answer["result"]
        quarantine = result["quarantine_path"]
        # Raw, one entry per line: a quarantined line or fragment never holds a newline.
        pieces = input_lines(Path(quarantine).read_bytes()) if quarantine else []
        assert len(pieces) == result["quarantined"] + result["fragments"]
        written = written_records(path)
        assert_accounted(data, written, pieces)
        assert_good_lines_kept_in_order(data, written)


REPAIRS: list[Callable[[bytes], None]] = [run_orchestrator_repair, run_agent_repair]


@pytest.mark.parametrize("run", REPAIRS, ids=["orchestrator", "agent"])
@pytest.mark.parametrize("data", REGRESSIONS)
def test_objects_run_together_with_garbage_lose_nothing(run: Callable[[bytes], None], data: bytes) -> None:
    run(data)


@PROPERTY
@given(data=CONTENT)
@example(data=b'{"id":1}X{"id":2}')
@example(data=b"\xff" * 200 + b'\n{"a":1}')  # a huge line of invalid UTF-8, no trailing newline
def test_orchestrator_repair_loses_no_byte(data: bytes) -> None:
    run_orchestrator_repair(data)


@PROPERTY
@given(data=CONTENT)
@example(data=b'{"id":3}[1,2]{"id":4}')
@example(data=b"\x00" * 100 + b'{"a":1}\r\n')
def test_agent_repair_loses_no_byte(data: bytes) -> None:
    run_agent_repair(data)


@settings(max_examples=500, deadline=None)
@given(line=st.one_of(st.lists(st.sampled_from([p for p in PIECES if b"\n" not in p]), max_size=30)
                      .map(b"".join), st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))))
def test_salvage_segments_cover_the_line_exactly(line: bytes) -> None:
    segments = agent.salvage(line)
    if not segments:
        return
    assert [s[0] for s in segments] == [0] + [s[1] for s in segments[:-1]]
    assert segments[-1][1] == len(line)
    for start, end, record in segments:
        assert start < end
        if record is not None:
            source = line[start:end]
            assert record == source or any(record == source + c for c in CLOSERS)
            assert judge(record).kind is None  # every record written is a JSON object


@pytest.mark.parametrize(("written", "pieces"), [
    ([b'{"id":1}'], []),                             # the bug of issue 13: the rest of the line vanished
    ([b'{"id":1}', b'{"id":2}'], []),                 # the X vanished
    ([b'{"id":2}', b'{"id":1}'], [b"X"]),             # reordered
    ([b'{"id":1}', b'{"id":2}'], [b"Y"]),             # changed
])
def test_the_account_catches_lost_or_reordered_bytes(written: list[bytes], pieces: list[bytes]) -> None:
    with pytest.raises(AssertionError, match="no byte-exact account"):
        assert_accounted(b'{"id":1}X{"id":2}\n', written, pieces)
    assert_accounted(b'{"id":1}X{"id":2}\n', [b'{"id":1}', b'{"id":2}'], [b"X"])
