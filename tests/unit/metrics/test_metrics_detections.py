"""The per-target detection record: first-seen times carried over, repaired issues dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.metrics.detections import forget_issues, load_detections, record_path, remember_detection
from orchestrator.model import Severity
from tests.unit.metrics.populated import issue

NGINX = issue("nginx", Severity.CRITICAL, "nginx.service")
CRON = issue("cron", Severity.WARNING, "cron.service")


def test_an_issue_keeps_its_first_seen_time_while_it_stays_open(tmp_path: Path) -> None:
    remember_detection(tmp_path, "local", "local", [NGINX], now=100.0)
    remember_detection(tmp_path, "local", "local", [NGINX, CRON], now=160.0)
    (record,), problems = load_detections(tmp_path)
    assert problems == []
    assert record.at == 160.0
    assert {i.component: i.first_seen for i in record.issues} == {"nginx": 100.0, "cron": 160.0}
    remember_detection(tmp_path, "local", "local", [CRON], now=220.0)
    remember_detection(tmp_path, "local", "local", [NGINX, CRON], now=280.0)
    (record,), _ = load_detections(tmp_path)
    assert {i.component: i.first_seen for i in record.issues} == {"nginx": 280.0, "cron": 160.0}


def test_repaired_issues_are_forgotten_and_the_detection_time_kept(tmp_path: Path) -> None:
    remember_detection(tmp_path, "vm-x", "vm:x", [NGINX, CRON], now=100.0)
    forget_issues(tmp_path, "vm-x", {NGINX.id})
    (record,), _ = load_detections(tmp_path)
    assert (record.target, record.at, [i.id for i in record.issues]) == ("vm:x", 100.0, [CRON.id])


def test_a_broken_record_is_reported_and_replaced(tmp_path: Path) -> None:
    path = record_path(tmp_path, "local")
    path.parent.mkdir()
    path.write_text('{"target": "local", "at": true, "issues": []}')
    records, problems = load_detections(tmp_path)
    assert records == []
    assert len(problems) == 1
    assert "not a finite number: 'True'" in problems[0]
    remember_detection(tmp_path, "local", "local", [NGINX], now=5.0)
    assert load_detections(tmp_path)[0][0].issues[0].first_seen == 5.0


def test_a_record_that_cannot_be_written_fails_nothing(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "detections").write_text("a file where the directory goes")
    remember_detection(tmp_path, "local", "local", [NGINX], now=5.0)
    assert "detection of local not recorded for metrics" in caplog.text
