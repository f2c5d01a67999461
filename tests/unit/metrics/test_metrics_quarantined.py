"""Components in quarantine, from the local quarantine directory's manifests."""

from __future__ import annotations

from pathlib import Path

from orchestrator.metrics.quarantined import load_quarantined
from tests.unit.metrics.populated import T0, write_quarantine


def test_quarantines_in_force_are_listed_and_released_ones_not(tmp_path: Path) -> None:
    write_quarantine(tmp_path, "sampleapp", "20260101T001000Z")
    write_quarantine(tmp_path, "nginx", "20260101T000000Z", status="released")
    write_quarantine(tmp_path, "cron", "20260101T000500Z", status="quarantining",
                     at="2026-01-01T00:05:00+00:00")
    found, problems = load_quarantined(tmp_path)
    assert problems == []
    assert [(q.component, q.since) for q in found] == [("cron", T0 + 300), ("sampleapp", T0 + 600)]


def test_an_unusable_manifest_is_reported_and_other_dirs_ignored(tmp_path: Path) -> None:
    bad = tmp_path / "sampleapp" / "20260101T001000Z"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text("{")
    (tmp_path / "20260101T001000Z" / "etc").mkdir(parents=True)  # a repair step's single-file quarantine
    found, problems = load_quarantined(tmp_path)
    assert found == []
    assert len(problems) == 1
    assert "is unusable: not JSON" in problems[0]


def test_no_quarantine_directory_is_no_quarantine(tmp_path: Path) -> None:
    assert load_quarantined(tmp_path / "missing") == ([], [])
