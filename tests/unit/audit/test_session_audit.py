"""Session mirrors its stage events into an AuditSink; a failing sink never fails the run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.log import AuditLog
from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.errors import AuditError, PipelineError
from orchestrator.jsonl import verify
from orchestrator.session.store import Session, new_session


def evidence(session: Session) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]


def test_stage_events_are_mirrored(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    session = new_session(tmp_path / "sessions", "ssh://root@web1", audit=sink)
    with session.stage("detect") as record:
        record.detail = "2 issue(s)"
    with pytest.raises(PipelineError), session.stage("connect"):
        raise PipelineError("target is unreachable\n{\"forged\": 1}", stage="connect")
    session.event("connect", "error", error="PipelineError", message="unreachable")
    session.event("connect", "note", text="not mirrored")

    summary = [(r["event"], r["component"], r["status"], r["details"]["stage"]) for r in sink.records]
    assert summary == [("stage_started", "pipeline", "running", "detect"),
                       ("stage_finished", "pipeline", "ok", "detect"),
                       ("stage_started", "pipeline", "running", "connect"),
                       ("stage_finished", "pipeline", "failed", "connect"),
                       ("stage_error", "pipeline", "error", "connect")]
    finished = sink.records[1]["details"]
    assert (finished["session"], finished["target"], finished["detail"]) == (
        session.id, "ssh://root@web1", "2 issue(s)")


def test_mirrored_into_a_real_audit_log(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    session = new_session(tmp_path / "sessions", "local", audit=log)
    with session.stage("detect"):
        pass
    assert verify(log.path).ok
    assert verify(log.path).good_lines == 2


class _BrokenSink:
    def record(self, event: str, *, component: str, status: str, details: Mapping[str, Any] | None = None,
               durable: bool = False) -> None:
        raise AuditError("cannot append to audit log /x: No space left on device", remedy="free space")


def test_a_failing_sink_is_noted_once_and_never_fails_the_stage(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    session = new_session(tmp_path / "sessions", "local", audit=_BrokenSink())
    with session.stage("detect"):
        pass
    with session.stage("triage"):
        pass
    notes = [e for e in evidence(session) if e["event"] == "audit_failed"]
    assert notes == [{"ts": notes[0]["ts"], "session": session.id, "stage": "detect", "event": "audit_failed",
                      "message": "cannot append to audit log /x: No space left on device",
                      "remedy": "free space"}]
    assert [r.getMessage() for r in caplog.records].count(
        "cannot append to audit log /x: No space left on device (remedy: free space)") == 4
    assert [r.status for r in session.timeline] == ["ok", "ok"]


def test_no_sink_by_default(tmp_path: Path) -> None:
    session = new_session(tmp_path / "sessions", "local")
    assert session.audit is None
    with session.stage("detect"):
        pass
    assert [e["event"] for e in evidence(session)] == ["started", "finished"]
