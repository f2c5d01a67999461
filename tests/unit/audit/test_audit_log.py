"""AuditLog: record format, the hash chain across reopens and processes, hostile strings, damaged
tails, permissions and the OSError -> AuditError mapping."""

from __future__ import annotations

import datetime as dt
import errno
import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from orchestrator.audit.log import AuditLog
from orchestrator.audit.record import GENESIS_HASH, MAX_RECORD, MAX_STRING, RECORD_KEYS, line_hash
from orchestrator.errors import AuditError
from orchestrator.jsonl import VerifyStatus, verify

FORGED = '\n{"seq":2,"timestamp":"x","event":"forged","component":"c","status":"ok","details":{},"prev":"'


def lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(path)]


def assert_chain(path: Path) -> None:
    prev = GENESIS_HASH
    for seq, line in enumerate(lines(path), 1):
        record = json.loads(line)
        assert (record["seq"], record["prev"]) == (seq, prev)
        prev = line_hash(line)


def test_records_have_fixed_keys_utc_timestamps_and_a_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("recovery", component="nginx", status="ok", details={"action": "restart"})
    log.record("error", component="db", status="error", details=None, durable=True)
    first, second = records(tmp_path / "audit.jsonl")
    assert tuple(first) == tuple(second) == RECORD_KEYS
    assert (first["event"], first["component"], first["status"], first["details"]) == (
        "recovery", "nginx", "ok", {"action": "restart"})
    assert second["details"] == {}
    moment = dt.datetime.fromisoformat(str(first["timestamp"]))
    assert moment.utcoffset() == dt.timedelta(0)
    assert_chain(tmp_path / "audit.jsonl")


def test_chain_continues_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).record("a", component="c", status="ok")
    AuditLog(path).record("b", component="c", status="ok")
    AuditLog(path).record("c", component="c", status="ok")
    assert [r["seq"] for r in records(path)] == [1, 2, 3]
    assert_chain(path)
    assert verify(path).status is VerifyStatus.OK


def _append_many(path: str, name: str, count: int) -> None:
    log = AuditLog(Path(path))
    for index in range(count):
        log.record("tick", component=name, status="ok", details={"i": index})


def test_concurrent_appends_from_two_processes_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("fork")  # fork: no re-import of the test module per child
    workers = [context.Process(target=_append_many, args=(str(path), name, 200)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    found = records(path)
    assert [r["seq"] for r in found] == list(range(1, 401))
    for name in ("a", "b"):  # every record of each writer, in its own order
        assert [r["details"] for r in found if r["component"] == name] == [{"i": i} for i in range(200)]
    assert_chain(path)
    report = verify(path)
    assert (report.status, report.audit, report.good_lines) == (VerifyStatus.OK, True, 400)


def test_guest_string_cannot_split_or_forge_a_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    hostile = FORGED + GENESIS_HASH + '"}\n\r\x00\x1b[31m\u2028\u0085\udcff end'
    log = AuditLog(path)
    log.record("probe", component="guest", status="ok", details={"stdout": hostile, hostile: 1})
    (line,) = lines(path)
    assert line.isascii()
    assert all(32 <= byte < 127 for byte in line)  # no raw control byte of any kind
    (record,) = records(path)
    assert record["details"] == {"stdout": hostile, hostile: 1}
    assert verify(path).ok


def test_long_strings_and_huge_records_are_capped_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("big", component="c", status="ok", details={"out": "x" * 10_000, "raw": b"\xff\x00ok"})
    snowmen = {f"k{i}": "\u2603" * MAX_STRING for i in range(40)}  # 24 KiB each once escaped
    log.record("huge", component="c", status="ok", details=snowmen)
    small, huge = records(path)
    assert small["details"] == {"out": "x" * MAX_STRING + "...[truncated: 10000 characters]",
                                "raw": "\\xff\x00ok"}
    assert all(len(line) <= MAX_RECORD for line in lines(path))
    details = huge["details"]
    assert isinstance(details, dict)
    assert details["truncated"].startswith("record of ")
    assert details["keys"][:2] == ["k0", "k1"]
    assert verify(path).ok


def test_torn_tail_is_closed_and_bridged_by_a_chain_break_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("a", component="c", status="ok")
    good_size = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b'{"seq":2,"timestamp":"2026-')  # a crash mid-record
    log.record("b", component="c", status="ok")

    raw = lines(path)
    assert raw[1] == b'{"seq":2,"timestamp":"2026-'  # left for verify to report, never chained onto
    note, after = json.loads(raw[2]), json.loads(raw[3])
    assert (note["seq"], note["event"], note["component"], note["status"]) == (
        2, "chain_break", "audit", "warning")
    assert note["details"] == {"reason": "torn last line", "damaged_from_byte": good_size,
                               "damaged_bytes": 27, "resumes_after_seq": 1}
    assert note["prev"] == line_hash(raw[0])
    assert (after["seq"], after["prev"]) == (3, line_hash(raw[2]))
    report = verify(path)
    assert (report.status, report.chain_break_count) == (VerifyStatus.CORRUPT, 0)
    assert [(p.line, p.offset) for p in report.problems] == [(2, good_size)]


def test_garbage_without_any_good_record_restarts_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"not a record\n\x00\x00\x00\n")
    AuditLog(path).record("a", component="c", status="ok")
    note, record = (json.loads(line) for line in lines(path)[2:])
    assert (note["seq"], note["prev"], note["details"]["damaged_from_byte"]) == (1, GENESIS_HASH, 0)
    assert record["seq"] == 2
    assert verify(path).status is VerifyStatus.CORRUPT  # the garbage, not the chain


def test_a_rotated_log_starts_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("a", component="c", status="ok")
    path.rename(tmp_path / "audit.jsonl.1")
    log.record("b", component="c", status="ok")
    assert [(r["seq"], r["prev"]) for r in records(path)] == [(1, GENESIS_HASH)]


def test_directory_is_created_0700_and_file_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "log" / "vmrepair" / "audit.jsonl"
    old = os.umask(0)
    try:
        AuditLog(path).record("a", component="c", status="ok")
    finally:
        os.umask(old)
    for directory in (tmp_path / "var", tmp_path / "var" / "log", path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_enospc_becomes_an_audit_error_naming_path_and_remedy(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).record("a", component="c", status="ok")
    before = path.read_bytes()

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(AuditError) as caught:
        AuditLog(path).record("b", component="c", status="ok")
    assert caught.value.message == f"cannot append to audit log {path}: No space left on device"
    assert caught.value.remedy == f"free space on the filesystem holding {tmp_path} (df -h {tmp_path})"
    assert path.read_bytes() == before


def test_a_short_write_is_truncated_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("a", component="c", status="ok")
    before = path.read_bytes()
    real_write = os.write

    def half(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(AuditError, match=r"short write \(\d+ of \d+ bytes\)"):
        log.record("b", component="c", status="ok")
    assert path.read_bytes() == before  # no half record left behind
    monkeypatch.setattr(os, "write", real_write)
    log.record("c", component="c", status="ok")
    assert_chain(path)


def test_symlink_and_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "real")
    with pytest.raises(AuditError) as caught:
        AuditLog(tmp_path / "link.jsonl").record("a", component="c", status="ok")
    assert caught.value.remedy == f"{tmp_path / 'link.jsonl'} is a symlink, which is refused: replace it " \
                                  "with a regular file"
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(AuditError) as caught:
        AuditLog(tmp_path / "dir.jsonl").record("a", component="c", status="ok")
    assert caught.value.message == f"cannot append to audit log {tmp_path / 'dir.jsonl'}: Is a directory"
    assert caught.value.remedy == f"{tmp_path / 'dir.jsonl'} is not a regular file: move it away, or set " \
                                  "audit.path in config.yaml"
    assert (tmp_path / "real").read_text() == ""


def test_eacces_becomes_an_audit_error_naming_path_and_remedy(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", denied)  # root ignores file modes: simulate a non-root user
    with pytest.raises(AuditError) as caught:
        AuditLog(path).record("a", component="c", status="ok")
    assert caught.value.message == f"cannot append to audit log {path}: Permission denied"
    assert caught.value.remedy == ("run vmrepair as root, or set audit.path in config.yaml to a file this "
                                   "user can write")
