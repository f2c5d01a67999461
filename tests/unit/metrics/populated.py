"""A state directory with one of everything the persisted metrics read, written the way vmrepair
writes it (session files, the state store, a detection record, a quarantine manifest)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.metrics.collector import StatePaths
from orchestrator.metrics.detections import remember_detection
from orchestrator.model import Issue, IssueKind, Severity
from orchestrator.state.db import open_state
from orchestrator.state.outcomes import OutcomeStore

#: 2026-01-01T00:00:00Z
T0 = 1767225600.0


def iso(seconds: float) -> str:
    """T0 + ``seconds`` (within the first hour) as the session store writes times."""
    assert 0 <= seconds < 3600, seconds
    return f"2026-01-01T00:{int(seconds) // 60:02d}:{seconds % 60:06.3f}+00:00"


def write_session(sessions: Path, sid: str, *, status: str, target: str = "local",
                  detect_end_s: float = 5.0, finished_s: float | None = 125.0, dry_run: bool = False,
                  evidence: list[dict[str, object]] | None = None) -> Path:
    """A session directory as the pipeline leaves it: detect took 0 → ``detect_end_s`` seconds after T0."""
    directory = sessions / sid
    directory.mkdir(parents=True)
    meta: dict[str, object] = {"id": sid, "target": target, "started_at": iso(0), "status": status,
                               "dry_run": dry_run}
    if finished_s is not None:
        meta["finished_at"] = iso(finished_s)
    (directory / "session.json").write_text(json.dumps(meta))
    stages = [{"name": "connect", "started_at": iso(0), "duration_s": 0.5, "status": "ok", "detail": ""},
              {"name": "detect", "started_at": iso(1), "duration_s": detect_end_s - 1, "status": "ok",
               "detail": ""}]
    if evidence is not None:
        stages.append({"name": "sandbox", "started_at": iso(10), "duration_s": 20, "status": "ok",
                       "detail": ""})
    (directory / "timeline.json").write_text(json.dumps(stages))
    lines = [json.dumps({"session": sid, **e}) for e in evidence or []]
    (directory / "evidence.jsonl").write_text("".join(line + "\n" for line in lines))
    return directory


def sandbox_ready(boot_seconds: float, at_s: float) -> list[dict[str, object]]:
    return [{"ts": iso(at_s - boot_seconds), "stage": "sandbox", "event": "booting", "vm": "trb-x"},
            {"ts": iso(at_s), "stage": "sandbox", "event": "ready", "vm": "trb-x",
             "boot_seconds": boot_seconds}]


def sandbox_failed(at_s: float) -> list[dict[str, object]]:
    return [{"ts": iso(at_s - 20), "stage": "sandbox", "event": "booting", "vm": "trb-x"},
            {"ts": iso(at_s - 19), "stage": "sandbox", "event": "started"},
            {"ts": iso(at_s), "stage": "sandbox", "event": "finished", "status": "failed", "duration_s": 19}]


def write_quarantine(root: Path, component: str, stamp: str, *, status: str = "quarantined",
                     at: str = "2026-01-01T00:10:00+00:00") -> Path:
    directory = root / component / stamp
    directory.mkdir(parents=True)
    manifest = {"format": 1, "component": component, "directory": str(directory), "status": status,
                "reason": "2 escalations and still failing", "quarantined_at": at, "host": "h",
                "paths": [], "units": []}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def issue(component: str, severity: Severity, subject: str) -> Issue:
    return Issue(component, IssueKind.UNIT_INACTIVE, severity, subject, f"{subject} is down",
                 f"unit:{subject}")


def populate(state_dir: Path) -> StatePaths:
    """Two repaired runs (120 s and 20 s from detection), one error, one dry run; the newest VM boot
    ready in 4.5 s; strategy outcomes; an open critical and warning issue; one quarantine."""
    paths = StatePaths(state_dir / "state.db", state_dir / "sessions", state_dir, state_dir / "quarantine")
    write_session(paths.sessions_dir, "20260101T000001Z-aaaaaa", status="repaired")
    write_session(paths.sessions_dir, "20260101T000002Z-bbbbbb", status="error", evidence=sandbox_failed(40))
    write_session(paths.sessions_dir, "20260101T000003Z-cccccc", status="repaired", finished_s=25.0,
                  evidence=sandbox_ready(4.5, 20))
    write_session(paths.sessions_dir, "20260101T000004Z-dddddd", status="not_repaired", dry_run=True)
    with open_state(paths.state_db) as db:
        store = OutcomeStore(db)
        store.record("restart-unit", succeeded=True)
        store.record("restart-unit", succeeded=True, stage="target")
        store.record("restore-baseline", succeeded=False)
    remember_detection(state_dir, "local", "local", [issue("nginx", Severity.CRITICAL, "nginx.service"),
                                                     issue("cron", Severity.WARNING, "cron.service")], now=T0)
    write_quarantine(paths.quarantine_dir, "sampleapp", "20260101T001000Z")
    return paths
