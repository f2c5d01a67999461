"""repair() of a missing or empty file: restore from the newest good rotation or backup."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest

from orchestrator.audit.log import AuditLog
from orchestrator.errors import AuditError
from orchestrator.jsonl import RepairAction, VerifyStatus, repair, verify
from orchestrator.jsonl import restore as restore_module
from orchestrator.jsonl.restore import rotation_candidates

GOOD = b'{"n": 1}\n{"n": 2}\n'


def aged(path: Path, data: bytes, age_s: int) -> Path:
    path.write_bytes(data)
    moment = 1_700_000_000 - age_s
    os.utime(path, (moment, moment))
    return path


def test_candidates_are_rotations_and_backups_newest_first(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    aged(tmp_path / "app.jsonl.1", GOOD, 10)
    aged(tmp_path / "app.jsonl.2.gz", GOOD, 20)
    aged(tmp_path / "app.jsonl-20261120", GOOD, 5)
    aged(tmp_path / "app.jsonl.bak-20261121T101500Z", GOOD, 1)
    for other in ("app.jsonl.quarantine-20261121T101500Z.jsonl", "app.jsonl.old", "other.jsonl.1"):
        aged(tmp_path / other, GOOD, 0)
    aged(tmp_path / "app.jsonl.3", b"", 0)  # empty: nothing to restore from
    assert [p.name for p in rotation_candidates(log)] == [
        "app.jsonl.bak-20261121T101500Z", "app.jsonl-20261120", "app.jsonl.1", "app.jsonl.2.gz"]


def test_missing_file_is_restored_from_the_newest_good_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    aged(tmp_path / "app.jsonl.1", b'{"n": 1}\n{"broken', 1)  # newest, but does not verify
    with gzip.open(tmp_path / "app.jsonl.1.gz", "wb") as packed:
        packed.write(b'{"n": 0}\n' * 3)
    os.utime(tmp_path / "app.jsonl.1.gz", (1_699_999_990, 1_699_999_990))
    aged(tmp_path / "app.jsonl-20261101", GOOD, 100)
    (tmp_path / "app.jsonl.1").chmod(0o640)

    done = repair(log)
    assert (done.action, done.restored_from, done.lines_read, done.kept) == (
        RepairAction.RESTORED, tmp_path / "app.jsonl.1.gz", 3, 3)
    assert done.skipped == [(tmp_path / "app.jsonl.1", "torn_tail: last line, no newline: not JSON: "
                             "Unterminated string starting at column 2")]
    assert done.notes == [f"{log} was missing: restored 3 line(s) from {tmp_path / 'app.jsonl.1.gz'}, "
                          "which is left in place"]
    assert log.read_bytes() == b'{"n": 0}\n' * 3
    assert (tmp_path / "app.jsonl.1.gz").exists()
    assert verify(log).status is VerifyStatus.OK
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vmrepair-")]  # no temp files left


def test_empty_file_is_restored_keeping_its_own_mode(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_bytes(b"")
    log.chmod(0o604)
    aged(tmp_path / "app.jsonl-20261120", GOOD, 1)
    done = repair(log)
    assert (done.action, done.restored_from, done.backup) == (
        RepairAction.RESTORED, tmp_path / "app.jsonl-20261120", None)
    assert log.read_bytes() == GOOD
    assert stat.S_IMODE(log.stat().st_mode) == 0o604


def test_empty_file_without_rotation_is_fine(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_bytes(b"")
    done = repair(log)
    assert done.action is RepairAction.NONE
    assert done.notes == ["the file is empty, which is valid; nothing good to restore it from (none found)"]


def test_missing_file_without_a_good_copy_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    aged(tmp_path / "app.jsonl.1.gz", b"not gzip at all", 1)
    with pytest.raises(AuditError) as caught:
        repair(log)
    assert caught.value.message == (f"{log} is missing and no good backup or rotation was found beside it "
                                    "(app.jsonl.1.gz: unreadable: Not a gzipped file (b'no'))")
    assert caught.value.remedy == ("check the path; looked for app.jsonl.1, app.jsonl.1.gz, "
                                   "app.jsonl-YYYYMMDD and app.jsonl.bak-*")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jsonl.1.gz"]


def test_audit_log_restored_from_rotation_keeps_its_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    writer = AuditLog(log)
    for index in range(3):
        writer.record("tick", component="c", status="ok", details={"i": index})
    log.rename(tmp_path / "audit.jsonl.1")
    done = repair(log)
    assert (done.action, done.audit, done.kept) == (RepairAction.RESTORED, True, 3)
    writer.record("after", component="c", status="ok")
    report = verify(log)
    assert (report.status, report.good_lines) == (VerifyStatus.OK, 4)


# -- gzip bombs (issue 13) -----------------------------------------------------------------------


def bomb(path: Path, size: int, age: int = 1) -> None:
    """A gzip rotation of ``size`` bytes of one repeated good line: it compresses about 300:1."""
    line = b'{"a": 1}\n'
    with gzip.open(path, "wb", compresslevel=9) as packed:
        for _ in range(size // (len(line) * 4096)):
            packed.write(line * 4096)
    os.utime(path, (1_700_000_000 - age, 1_700_000_000 - age))


def test_a_rotation_that_decompresses_too_far_is_passed_over(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "MAX_RESTORED_BYTES", 1024 * 1024)
    bomb(tmp_path / "app.jsonl.1.gz", 2 * 1024 * 1024)
    with pytest.raises(AuditError) as caught:
        repair(tmp_path / "app.jsonl")
    assert caught.value.message == (
        f"{tmp_path / 'app.jsonl'} is missing and no good backup or rotation was found beside it "
        "(app.jsonl.1.gz: decompresses to more than 1048576 bytes, the cap for a restored file)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jsonl.1.gz"]  # the partial copy is gone


def test_a_gzip_bomb_is_stopped_by_its_ratio_and_an_older_rotation_used(tmp_path: Path) -> None:
    bomb(tmp_path / "app.jsonl.1.gz", 40 * 1024 * 1024, age=1)  # 40 MiB from about 130 KiB
    aged(tmp_path / "app.jsonl.2", GOOD, 2)
    done = repair(tmp_path / "app.jsonl")
    assert (done.action, done.restored_from) == (RepairAction.RESTORED, tmp_path / "app.jsonl.2")
    ((skipped, why),) = done.skipped
    assert skipped == tmp_path / "app.jsonl.1.gz"
    assert why.startswith(f"decompresses to more than {restore_module.MAX_GZIP_RATIO} times its ")
    assert why.endswith("bytes (a gzip bomb?)")
