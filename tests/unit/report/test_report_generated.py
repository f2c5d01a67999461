"""report.md for strategies generated from the evidence: the diagnosis lists them with their evidence,
each attempt shows what it does and its planned steps, and the Manual steps section appears only when
nothing validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.model import SessionStatus
from orchestrator.report.markdown import render_report
from orchestrator.session.store import Session, new_session
from tests.unit.report.mdcheck import fenced_blocks

HOSTILE = "```\n# Injected heading\n```"
GENERATED = {"strategy": "gen-make-dir-var-lib-app", "playbook": "generated:state",
             "description": "Create the missing directory /var/lib/app (StateDirectory= of app.service) "
                            f"{HOSTILE}",
             "cause": "directory_missing", "confidence": 0.9, "effectiveness": 0.85, "last_resort": False,
             "steps": ["make directory /var/lib/app (0750 app:app)", "reset-failed app.service"]}


def _session(tmp_path: Path, outcomes: list[str], *, status: str = "not_repaired",
             manual: list[str] | None = None) -> Session:
    session = new_session(tmp_path / "sessions", "vm:patient")
    session.write_json("diagnosis-app", {"cause": "unknown", "confidence": 0.0, "playbook": None,
                                         "variables": {}, "evidence": {}, "generated": [GENERATED]})
    attempts: list[dict[str, Any]] = [
        {"strategy": "gen-make-dir-var-lib-app", "playbook": "generated:state", "score": 0.38, "rank": n,
         "description": GENERATED["description"], "planned": GENERATED["steps"], "outcome": outcome,
         "reason": "validation failed" if outcome != "validated" else None}
        for n, outcome in enumerate(outcomes, start=1)]
    session.write_json("attempts-app", attempts)
    detail: dict[str, Any] = {"component": "app", "issue": "app:path_missing:1", "status": status,
                              "summary": "s"}
    if manual:
        detail["manual_steps"] = manual
    session.set_meta(components=[detail])
    session.finish(SessionStatus(status), "done")
    return session


def test_generated_strategies_are_listed_with_their_evidence(tmp_path: Path) -> None:
    text = render_report(_session(tmp_path, ["validation_failed"]).dir)
    assert "Strategies generated from the evidence:" in text
    assert "| `gen-make-dir-var-lib-app` | generated:state | directory\\_missing | 90% |" in text
    assert "- **What it does:** Create the missing directory /var/lib/app" in text
    assert "- **Planned steps:** `make directory /var/lib/app (0750 app:app)`; `reset-failed app.service`" \
        in text
    outside, _ = fenced_blocks(text)
    assert not any(line.startswith("# Injected") for line in outside)


def test_manual_steps_when_nothing_validated(tmp_path: Path) -> None:
    text = render_report(_session(tmp_path, ["validation_failed"], manual=["quote support reference X"]).dir)
    section = text[text.index("### Manual steps"):]
    assert "1. `gen-make-dir-var-lib-app`: it ran, but validation failed (validation failed)." in section
    assert "   - `make directory /var/lib/app (0750 app:app)`" in section
    assert "- quote support reference X" in section
    assert "vmrepair detect" in section


def test_no_manual_steps_once_a_strategy_validated(tmp_path: Path) -> None:
    text = render_report(_session(tmp_path, ["validation_failed", "validated"], status="repaired").dir)
    assert "### Manual steps" not in text
    assert "### Manual steps" not in render_report(_session(tmp_path / "b", ["validated"]).dir)
