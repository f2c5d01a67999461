"""verify(): every classification with its line number and byte offset, audit-log chains, huge lines."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.audit.log import AuditLog
from orchestrator.jsonl import EXIT_CODES, ProblemKind, VerifyStatus, verify


def audit_log(path: Path, count: int = 4) -> list[bytes]:
    log = AuditLog(path)
    for index in range(count):
        log.record("tick", component="c", status="ok", details={"i": index})
    return path.read_bytes().splitlines()


def test_exit_codes_are_distinct_and_documented() -> None:
    assert EXIT_CODES == {VerifyStatus.OK: 0, VerifyStatus.TORN_TAIL: 20, VerifyStatus.CORRUPT: 21,
                          VerifyStatus.BROKEN_CHAIN: 22, VerifyStatus.UNREADABLE: 23}


def test_good_file(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{"b": [1, 2]}\r\n\n{"c": "\\u00e9"}\n')
    report = verify(tmp_path / "x.jsonl")
    assert (report.status, report.exit_code, report.audit) == (VerifyStatus.OK, 0, False)
    assert (report.lines, report.good_lines, report.blank_lines, report.problems) == (4, 3, 1, [])


def test_empty_file_is_ok_with_zero_lines(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b"")
    report = verify(tmp_path / "x.jsonl")
    assert (report.status, report.lines, report.exists) == (VerifyStatus.OK, 0, True)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    report = verify(tmp_path / "nope.jsonl")
    assert (report.status, report.exit_code, report.exists) == (VerifyStatus.UNREADABLE, 23, False)
    assert report.summary() == f"{tmp_path / 'nope.jsonl'}: no such file"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    report = verify(tmp_path)
    assert (report.status, report.exists) == (VerifyStatus.UNREADABLE, True)
    assert report.error == f"{tmp_path} is not a regular file"


def test_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": "hal')
    report = verify(tmp_path / "x.jsonl")
    assert (report.status, report.exit_code, report.tail_problems, report.middle_problems) == (
        VerifyStatus.TORN_TAIL, 20, 1, 0)
    (problem,) = report.problems
    assert (problem.kind, problem.line, problem.offset, problem.in_tail) == (
        ProblemKind.NOT_JSON, 3, 18, True)
    assert problem.reason == "last line, no newline: not JSON: Unterminated string starting at column 7"


def test_good_last_line_without_newline_is_a_torn_tail(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}')
    report = verify(tmp_path / "x.jsonl")
    assert (report.status, report.good_lines) == (VerifyStatus.TORN_TAIL, 2)
    assert [(p.kind, p.line, p.offset) for p in report.problems] == [(ProblemKind.NO_NEWLINE, 2, 9)]


def test_corruption_in_the_middle(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{"b": \n[1]\n{"c": 3}\n{"d": 4')
    report = verify(tmp_path / "x.jsonl")
    assert (report.status, report.exit_code, report.middle_problems, report.tail_problems) == (
        VerifyStatus.CORRUPT, 21, 2, 1)
    assert [(p.kind, p.line, p.offset, p.in_tail) for p in report.problems] == [
        (ProblemKind.NOT_JSON, 2, 9, False), (ProblemKind.NOT_OBJECT, 3, 16, False),
        (ProblemKind.NOT_JSON, 5, 29, True)]


def test_nul_bytes_and_invalid_utf8(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n\x00\x00\x00\x00\n{"b": "\xff\xfe"}\n{"c": 3}\n')
    report = verify(tmp_path / "x.jsonl")
    assert report.status is VerifyStatus.CORRUPT
    assert [(p.kind, p.line, p.offset, p.reason) for p in report.problems] == [
        (ProblemKind.NUL_BYTES, 2, 9, "NUL byte at byte 0 of the line"),
        (ProblemKind.INVALID_UTF8, 3, 14, "invalid UTF-8 at byte 7 of the line")]


def test_100_mb_single_line_is_oversized_and_never_held_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"pad": "')
        block = b"x" * (1024 * 1024)
        for _ in range(100):
            handle.write(block)
        handle.write(b'"}\n{"after": 1}\n')
    tracemalloc.start()
    try:
        report = verify(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024  # the 16 MiB line cap plus a read chunk, never 100 MB
    assert (report.status, report.lines, report.good_lines) == (VerifyStatus.CORRUPT, 2, 1)
    (problem,) = report.problems
    assert (problem.kind, problem.line, problem.offset) == (ProblemKind.OVERSIZED, 1, 0)
    assert problem.reason == "line longer than 16777216 bytes"


def test_audit_log_is_recognised_and_its_chain_checked(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log(path)
    report = verify(path)
    assert (report.status, report.audit, report.good_lines) == (VerifyStatus.OK, True, 4)


def test_edited_record_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_log(path)
    raw[1] = raw[1].replace(b'"i":1', b'"i":7')
    path.write_bytes(b"\n".join(raw) + b"\n")
    report = verify(path)
    assert (report.status, report.exit_code, report.chain_break_count) == (VerifyStatus.BROKEN_CHAIN, 22, 1)
    (brk,) = report.chain_breaks
    assert (brk.line, brk.seq, brk.expected_seq, brk.offset) == (3, 3, 3, len(raw[0]) + len(raw[1]) + 2)
    assert brk.describe() == (f"line 3 (byte {brk.offset}): prev is not the hash of the record before (it "
                              "was changed, or records between were removed)")


def test_removed_record_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_log(path)
    path.write_bytes(b"\n".join([raw[0], *raw[2:]]) + b"\n")
    (brk,) = verify(path).chain_breaks
    assert (brk.line, brk.seq, brk.expected_seq) == (2, 3, 2)
    assert "seq 3 where 2 was expected" in brk.describe()


def test_broken_chain_outranks_corruption(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_log(path)
    path.write_bytes(b"\n".join([raw[0], b"garbage", *raw[2:]]) + b"\n")
    report = verify(path)
    assert (report.status, report.middle_problems, report.chain_break_count) == (
        VerifyStatus.BROKEN_CHAIN, 1, 1)


def test_audit_flag_checks_plain_json_lines_as_records(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n\n')
    report = verify(tmp_path / "x.jsonl", audit=True)
    assert report.status is VerifyStatus.TORN_TAIL  # no good line follows: bad lines at the end
    assert [(p.kind, p.line) for p in report.problems] == [
        (ProblemKind.NOT_RECORD, 1), (ProblemKind.BLANK, 2)]
    assert report.problems[0].reason.startswith("not an audit record: keys are not seq, timestamp")


@pytest.mark.parametrize("audit", [None, False])
def test_plain_file_with_seq_keys_only_checked_as_audit_when_auto(tmp_path: Path, audit: bool | None) -> None:
    (tmp_path / "x.jsonl").write_text(json.dumps({"seq": 5, "prev": "x"}) + "\n")
    report = verify(tmp_path / "x.jsonl", audit=audit)
    assert report.audit is (audit is None)
    assert report.ok is (audit is False)
