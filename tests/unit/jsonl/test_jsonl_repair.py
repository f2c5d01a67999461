"""repair(): backup, kept / repaired / quarantined accounting, crash-safe replace, audit chain breaks."""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.audit import chain
from orchestrator.audit.log import AuditLog
from orchestrator.errors import AuditError
from orchestrator.jsonl import RepairAction, VerifyStatus, repair, verify
from orchestrator.jsonl import repairer as repair_module

# (raw line, what becomes of it), in file order; the last line has no newline.
DAMAGED: list[tuple[bytes, str]] = [
    (b'{"a": 1}', "kept"),
    (b"", "kept"),                              # blank lines are fine in plain JSON lines
    (b'{"b": 2', "repaired"),                   # missing closing brace
    (b'{"d": 4} trailing garbage', "repaired"),
    (b'\x00\x00{"g": 7}\x00', "repaired"),      # NUL padding around a good object
    (b"[1, 2]", "quarantined"),
    (b'\xff\xfe{"h": 8}', "quarantined"),
    (b"\x00\x00\x00\x00", "quarantined"),
    (b'{"i": 9}', "kept"),
    (b'{"j": "tor', "repaired"),                # torn tail
]


def damaged(path: Path) -> bytes:
    data = b"\n".join(line for line, _ in DAMAGED)
    path.write_bytes(data)
    path.chmod(0o640)
    return data


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def quarantine_entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_round_trip_accounts_for_every_line(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    original = damaged(path)
    assert verify(path).status is VerifyStatus.CORRUPT
    done = repair(path)

    assert done.action is RepairAction.REPAIRED
    assert (done.lines_read, done.kept, done.repaired, done.quarantined) == (10, 3, 4, 3)
    assert done.kept + done.repaired + done.quarantined == done.lines_read
    assert path.read_bytes() == (b'{"a": 1}\n\n{"b": 2}\n{"d": 4}\n{"g": 7}\n{"i": 9}\n{"j": "tor"}\n')
    after = verify(path)
    assert (after.status, after.exit_code) == (VerifyStatus.OK, 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # mode of the original kept

    assert done.backup is not None
    assert done.backup.read_bytes() == original
    assert done.backup.name.startswith("app.jsonl.bak-")
    assert stat.S_IMODE(done.backup.stat().st_mode) == 0o640

    assert done.quarantine is not None
    assert "quarantine" in done.quarantine.name
    assert stat.S_IMODE(done.quarantine.stat().st_mode) == 0o600
    entries = quarantine_entries(done.quarantine)
    # The bytes around the salvaged objects are quarantined too (they used to be dropped: issue 13).
    fragments = [(4, b" trailing garbage"), (5, b"\x00\x00"), (5, b"\x00")]
    wanted = fragments + [(n, line) for n, (line, fate) in enumerate(DAMAGED, 1) if fate == "quarantined"]
    assert [(e["line"], base64.b64decode(str(e["raw_base64"]))) for e in entries] == wanted
    for entry in entries:
        offset, length = int(str(entry["offset"])), int(str(entry["length"]))
        assert original[offset:offset + length] == base64.b64decode(str(entry["raw_base64"]))
    assert [e["kind"] for e in entries] == ["fragment"] * 3 + ["not_object", "invalid_utf8", "nul_bytes"]
    assert (done.fragments, done.quarantined_bytes) == (3, sum(len(raw) for _, raw in wanted))
    assert files(tmp_path) == sorted(["app.jsonl", done.backup.name, done.quarantine.name])


def test_a_good_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    done = repair(path)
    assert (done.action, done.backup, done.kept, done.notes) == (
        RepairAction.NONE, None, 1, ["the file verifies: nothing to repair"])
    assert files(tmp_path) == ["ok.jsonl"]


def test_oversized_line_is_streamed_into_the_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    noise = bytes(byte for byte in range(256) if byte != ord("\n"))  # NULs, invalid UTF-8
    huge = b'{"x": "' + noise * 400 + b'"}'  # 100 KiB
    path.write_bytes(b'{"a": 1}\n' + huge + b'\n{"b": 2}\n')
    done = repair(path, max_line=1024)
    assert (done.kept, done.quarantined) == (2, 1)
    assert done.quarantine is not None
    (entry,) = quarantine_entries(done.quarantine)
    assert (entry["line"], entry["offset"], entry["length"], entry["kind"]) == (2, 9, len(huge), "oversized")
    assert base64.b64decode(str(entry["raw_base64"])) == huge
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'


def test_enospc_while_writing_leaves_the_file_and_no_leftovers(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.jsonl"
    original = damaged(path)

    def full_disk(src: int, dst: int, size: int) -> tuple[str, int]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(repair_module, "copy_range", full_disk)
    with pytest.raises(AuditError) as caught:
        repair(path)
    backup = str(caught.value).split("cannot write the backup ")[1].split(":")[0]
    assert caught.value.message == (f"cannot write the backup {backup}: No space left on device; {path} was "
                                    "not changed")
    assert caught.value.remedy == (f"free space on the filesystem holding {tmp_path} (df -h {tmp_path}), "
                                   "then run again")
    assert path.read_bytes() == original
    assert files(tmp_path) == ["app.jsonl"]


def test_a_writer_that_does_not_lock_makes_the_repair_give_up(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.jsonl"
    damaged(path)
    real_scan = repair_module.scan

    def scan_while_appending(fd: int, size: int, *, max_line: int) -> Iterator[object]:
        with path.open("ab") as handle:
            handle.write(b'\n{"late": 1}\n')
        yield from real_scan(fd, size, max_line=max_line)

    monkeypatch.setattr(repair_module, "scan", scan_while_appending)
    with pytest.raises(AuditError) as caught:
        repair(path)
    assert caught.value.message == (f"{path} changed while it was being repaired (is a program still writing "
                                    "it?); it was left as it is")
    assert caught.value.remedy == "stop or pause the writer, then run `vmrepair log repair` again"
    assert path.read_bytes().endswith(b'{"late": 1}\n')
    assert files(tmp_path) == ["app.jsonl"]


def test_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.jsonl").write_bytes(b"garbage\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "real.jsonl")
    with pytest.raises(AuditError) as caught:
        repair(tmp_path / "link.jsonl")
    assert caught.value.message.startswith(f"cannot repair {tmp_path / 'link.jsonl'}: cannot open")
    assert (tmp_path / "real.jsonl").read_bytes() == b"garbage\n"


# -- audit logs ----------------------------------------------------------------------------------


def audit_lines(path: Path, count: int = 5) -> list[bytes]:
    log = AuditLog(path)
    for index in range(count):
        log.record("tick", component="c", status="ok", details={"i": index})
    return path.read_bytes().splitlines()


def test_audit_repair_quarantines_without_salvaging_and_logs_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_lines(path, 2)
    with path.open("ab") as handle:
        handle.write(raw[1][:-1])  # a record cut one byte short: salvage could "fix" it, we must not
    before = verify(path)
    assert before.status is VerifyStatus.TORN_TAIL
    done = repair(path)
    assert (done.audit, done.kept, done.repaired, done.quarantined, done.appended_records) == (
        True, 2, 0, 1, 1)
    last = json.loads(path.read_bytes().splitlines()[-1])
    assert (last["seq"], last["event"], last["component"], last["status"]) == (
        3, "log_repair", "audit", "repaired")
    assert last["details"]["quarantine"] == str(done.quarantine)
    assert verify(path).status is VerifyStatus.OK
    AuditLog(path).record("after", component="c", status="ok")  # the writer goes on from there
    assert verify(path).status is VerifyStatus.OK


def test_broken_chain_is_acknowledged_not_rehashed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_lines(path)
    raw[1] = raw[1].replace(b'"i":1', b'"i":9')  # tampering
    path.write_bytes(b"\n".join(raw) + b"\n")
    assert verify(path).exit_code == 22
    done = repair(path)
    assert (done.kept, done.quarantined, done.acknowledged_breaks, done.appended_records) == (5, 0, 1, 1)

    kept = path.read_bytes().splitlines()
    assert kept[:5] == raw  # history untouched, the edited line included
    note = json.loads(kept[5])
    assert (note["seq"], note["event"], note["component"]) == (6, "chain_break", "audit")
    (brk,) = note["details"]["breaks"]
    assert (brk["line"], brk["seq"], brk["expected_seq"]) == (3, 3, 3)
    after = verify(path)
    assert (after.status, len(after.acknowledged_breaks), after.chain_break_count) == (VerifyStatus.OK, 1, 0)

    # A new edit before the chain_break record is not covered by it.
    kept[3] = kept[3].replace(b'"i":3', b'"i":8')
    path.write_bytes(b"\n".join(kept) + b"\n")
    again = verify(path)
    assert (again.status, again.chain_break_count, [b.line for b in again.chain_breaks]) == (
        VerifyStatus.BROKEN_CHAIN, 1, [5])


def test_quarantined_record_in_the_middle_is_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_lines(path)
    raw[2] = b"\x00" * len(raw[2])  # a block of the file zeroed
    path.write_bytes(b"\n".join(raw) + b"\n")
    before = verify(path)
    assert (before.status, before.middle_problems, before.chain_break_count) == (
        VerifyStatus.BROKEN_CHAIN, 1, 1)
    done = repair(path)
    assert (done.kept, done.quarantined, done.acknowledged_breaks) == (4, 1, 1)
    assert verify(path).ok


def test_too_many_chain_breaks_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    raw = audit_lines(path)
    path.write_bytes(b"\n".join(reversed(raw)) + b"\n")
    monkeypatch.setattr(chain, "MAX_PENDING", 2)
    monkeypatch.setattr(repair_module, "MAX_PENDING", 2)
    with pytest.raises(AuditError) as caught:
        repair(path)
    assert caught.value.message == (f"the hash chain of {path} is broken in 5 places, more than the 2 a "
                                    "repair acknowledges")
    assert files(tmp_path) == ["audit.jsonl"]


# -- nothing good to keep (issue 13) -------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"garbage\n",
    b"[1, 2]\n\x00\x00\x00\n\xff\xfe\n",
    b"not json\n\n   \nstill not\n",  # blank lines are no reason to empty the file either
    b"tor",
], ids=["one-bad-line", "mixed-garbage", "garbage-and-blanks", "one-torn-line"])
def test_a_file_with_nothing_good_is_left_untouched(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "app.jsonl"
    path.write_bytes(data)
    with pytest.raises(AuditError) as caught:
        repair(path)
    assert caught.value.message.startswith(f"nothing good to keep in {path}: none of its ")
    assert caught.value.message.endswith("so a repair would empty it; it was left untouched")
    assert caught.value.remedy is not None
    assert caught.value.remedy.startswith(f"the evidence is {path} itself (`vmrepair log verify {path}`")
    assert path.read_bytes() == data
    assert files(tmp_path) == ["app.jsonl"]  # no backup, quarantine or temp file left behind


def test_an_audit_log_with_no_record_left_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq": 1, "prev": "x"}\n\x00\x00\n')
    with pytest.raises(AuditError, match=r"none of its 2 line\(s\) holds a well-formed audit record"):
        repair(path, audit=True)
    assert path.read_bytes() == b'{"seq": 1, "prev": "x"}\n\x00\x00\n'
    assert files(tmp_path) == ["audit.jsonl"]


# -- symlinked directories (issue 13) ------------------------------------------------------------


@pytest.mark.parametrize("via", ["link", "link/sub"], ids=["parent", "grandparent"])
def test_a_symlinked_directory_above_the_file_is_refused(tmp_path: Path, via: str) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    name = Path(via) / "app.jsonl"
    (real / name.relative_to("link")).write_bytes(b'{"a": 1}\ngarbage\n')
    with pytest.raises(AuditError) as caught:
        repair(tmp_path / name)
    assert caught.value.message == (f"refusing {tmp_path / name}: {tmp_path / 'link'} is a symlink "
                                    f"(to {real}), which is not followed")
    assert caught.value.remedy is not None
    real_file = real / name.relative_to("link")
    assert caught.value.remedy.startswith(f"name the file by its real path, {real_file}:")
    assert [p.name for p in real.rglob("*") if p.is_file()] == ["app.jsonl"]  # no backup, no quarantine
    assert (real / name.relative_to("link")).read_bytes() == b'{"a": 1}\ngarbage\n'


def test_a_relative_path_is_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "app.jsonl").write_bytes(b'{"a": 1}\ngarbage\n')
    monkeypatch.chdir(tmp_path / "d")
    done = repair(Path("../d/app.jsonl"))
    assert (done.action, done.kept, done.quarantined) == (RepairAction.REPAIRED, 1, 1)
    assert (tmp_path / "d" / "app.jsonl").read_bytes() == b'{"a": 1}\n'


def test_a_file_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(AuditError, match=r"/f/app.jsonl: .*/f is not a directory$"):
        repair(tmp_path / "f" / "app.jsonl")
