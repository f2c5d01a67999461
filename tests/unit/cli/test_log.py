"""`vmrepair log verify|repair`: one exit code per finding, what repair did, messages that name the
file and the remedy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.audit.log import AuditLog
from orchestrator.cli.main import main


def _flat(text: str) -> str:
    """rich wraps long lines at the console width; compare messages without the wrapping."""
    return " ".join(text.split())


@pytest.fixture
def audit_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose audit.path is in tmp; returns that path (the file is not created)."""
    path = tmp_path / "audit" / "audit.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(f"libvirt_uri: test:///default\naudit:\n  path: {path}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(tmp_path / "state"))
    return path


def _audit_log(path: Path, count: int = 3) -> list[bytes]:
    log = AuditLog(path)
    for index in range(count):
        log.record("tick", component="c", status="ok", details={"i": index})
    return path.read_bytes().splitlines()


@pytest.mark.parametrize(("data", "code", "status"), [
    (b'{"a": 1}\n{"b": 2}\n', 0, "ok"),
    (b"", 0, "ok"),
    (b'{"a": 1}\n{"b": ', 20, "torn_tail"),
    (b'{"a": 1}\n\x00\x00\x00\n{"b": 2}\n', 21, "corrupt"),
    (b'{"a": 1}\n\xff\n{"b": 2}\n', 21, "corrupt"),
])
def test_verify_exit_codes(audit_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *,
                           data: bytes, code: int, status: str) -> None:
    (tmp_path / "x.jsonl").write_bytes(data)
    assert main(["log", "verify", str(tmp_path / "x.jsonl"), "--json"]) == code
    report = json.loads(capsys.readouterr().out)
    assert (report["status"], report["exit_code"], report["format"]) == (status, code, "jsonl")


def test_verify_broken_chain_and_missing_file(audit_path: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    raw = _audit_log(audit_path)
    audit_path.write_bytes(b"\n".join([raw[0], raw[2]]) + b"\n")
    assert main(["log", "verify"]) == 22  # no FILE: the configured audit log
    out = _flat(capsys.readouterr().out)
    assert out.startswith(f"broken_chain: {audit_path}: audit log, 2 line(s), 2 good, hash chain broken in 1")
    assert "chain broken at line 2 (byte " in out
    assert "seq 3 where 2 was expected" in out
    assert f"remedy: `vmrepair log repair {audit_path}` (backs the file up first)" in out

    assert main(["log", "verify", str(tmp_path / "nope.jsonl")]) == 23
    assert _flat(capsys.readouterr().out) == (
        f"unreadable: {tmp_path / 'nope.jsonl'}: no such file remedy: check the path; `vmrepair log repair "
        f"{tmp_path / 'nope.jsonl'}` restores it from a rotation or backup")


def test_verify_for_people_lists_problems_with_line_and_offset(audit_path: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\nnope\n{"b": 2}\n{"c": ')
    assert main(["log", "verify", str(tmp_path / "x.jsonl")]) == 21
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  line 2 (byte 9) not_json, middle: not JSON: Expecting value at column 1"
    assert out[2] == "  line 4 (byte 23) not_json, torn tail: last line, no newline: not JSON: Expecting " \
                     "value at column 7"


def test_verify_audit_flag(audit_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}\n')
    assert main(["log", "verify", str(tmp_path / "x.jsonl"), "--audit", "--json"]) == 20
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "audit"
    assert [p["kind"] for p in report["problems"]] == ["not_record", "not_record"]


def test_repair_prints_what_it_did_and_then_verifies(audit_path: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n[1]\n{"b": 2} junk\n{"c": ')
    assert main(["log", "repair", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    backup = next(p for p in tmp_path.iterdir() if ".bak-" in p.name)
    quarantine = next(p for p in tmp_path.iterdir() if ".quarantine-" in p.name)
    assert out == [f"repaired: {path} (JSON-lines file)", f"  backup: {backup}",
                   f"  quarantine: {quarantine}",
                   # " junk" is quarantined as a fragment (it used to vanish: issue 13)
                   "  lines read 4: kept 1, repaired 1, quarantined 2 (and 1 fragment(s) of repaired lines); "
                   "14 byte(s) in the quarantine",
                   "verify after repair: ok"]
    assert main(["log", "verify", str(path)]) == 0


def test_repair_json_of_the_audit_log(audit_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _audit_log(audit_path)
    audit_path.write_bytes(b"\n".join([raw[0], raw[2]]) + b"\n")
    assert main(["log", "repair", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    done = result["repair"]
    assert (done["action"], done["format"], done["acknowledged_breaks"]) == ("repaired", "audit", 1)
    assert (result["verify"]["status"], len(result["verify"]["acknowledged_breaks"])) == ("ok", 1)
    assert main(["log", "verify", str(audit_path)]) == 0


def test_repair_restores_a_missing_file(audit_path: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.jsonl.1").write_bytes(b'{"a": 1}\n')
    assert main(["log", "repair", str(tmp_path / "x.jsonl")]) == 0
    out = _flat(capsys.readouterr().out)
    assert f"restored: {tmp_path / 'x.jsonl'} (JSON-lines file) restored from: {tmp_path / 'x.jsonl.1'}" \
        in out
    assert (tmp_path / "x.jsonl").read_bytes() == b'{"a": 1}\n'


def test_repair_of_a_missing_file_without_rotation_names_file_and_remedy(
        audit_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "repair", str(tmp_path / "x.jsonl")]) == 14
    err = _flat(capsys.readouterr().err)
    assert err == (f"error: {tmp_path / 'x.jsonl'} is missing and no good backup or rotation was found "
                   "beside it (none found) remedy: check the path; looked for x.jsonl.1, x.jsonl.1.gz, "
                   "x.jsonl-YYYYMMDD and x.jsonl.bak-*")
