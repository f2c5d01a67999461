"""Reading outcomes, time to repair and VM readiness from session files."""

from __future__ import annotations

from pathlib import Path

from orchestrator.metrics.sessions import SessionScanner, read_facts, read_readiness
from tests.unit.metrics.populated import T0, sandbox_failed, sandbox_ready, write_session


def test_time_to_repair_runs_from_the_end_of_detection_to_the_finish(tmp_path: Path) -> None:
    facts = read_facts(write_session(tmp_path, "s1", status="repaired", detect_end_s=7.0, finished_s=67.0))
    assert (facts.outcome, facts.repair_seconds, facts.finished_at) == ("repaired", 60.0, T0 + 67)


def test_only_repaired_runs_have_a_time_to_repair(tmp_path: Path) -> None:
    assert read_facts(write_session(tmp_path, "s1", status="not_repaired")).repair_seconds is None


def test_an_unreadable_or_odd_session_is_counted_as_such(tmp_path: Path) -> None:
    broken = tmp_path / "s1"
    broken.mkdir()
    (broken / "session.json").write_text("[1, 2")
    assert read_facts(broken).outcome == "unreadable"
    assert read_facts(write_session(tmp_path, "s2", status="made-up\nstatus")).outcome == "unknown"


def test_a_running_session_is_not_a_finished_repair(tmp_path: Path) -> None:
    write_session(tmp_path, "20260101T000001Z-aaaaaa", status="running", finished_s=None)
    assert SessionScanner(tmp_path).scan().facts == ()


def test_readiness_is_that_of_the_newest_vm(tmp_path: Path) -> None:
    write_session(tmp_path, "20260101T000001Z-aaaaaa", status="repaired", evidence=sandbox_ready(3.0, 30))
    write_session(tmp_path, "20260101T000002Z-bbbbbb", status="error", evidence=sandbox_failed(50))
    write_session(tmp_path, "20260101T000003Z-cccccc", status="healthy")  # no VM: skipped
    readiness = SessionScanner(tmp_path).scan().readiness
    assert readiness is not None
    assert (readiness.is_ok, readiness.seconds, readiness.at) == (False, None, T0 + 50)


def test_a_failed_stage_after_the_vm_was_ready_is_no_readiness_failure(tmp_path: Path) -> None:
    events = [*sandbox_ready(2.0, 12), {"ts": "2026-01-01T00:00:20+00:00", "stage": "sandbox",
                                        "event": "finished", "status": "failed"}]
    session = write_session(tmp_path, "s1", status="error", evidence=events)
    readiness = read_readiness(session / "evidence.jsonl")
    assert readiness is not None
    assert (readiness.is_ok, readiness.seconds) == (True, 2.0)


def test_torn_and_foreign_evidence_lines_are_skipped(tmp_path: Path) -> None:
    session = write_session(tmp_path, "s1", status="repaired", evidence=sandbox_ready(1.5, 9))
    with (session / "evidence.jsonl").open("a") as handle:
        handle.write('{"stage": "sandbox", "event": "ready", "ts": ')  # torn by a crash
    readiness = read_readiness(session / "evidence.jsonl")
    assert readiness is not None
    assert readiness.seconds == 1.5
    assert read_readiness(tmp_path / "missing.jsonl") is None
