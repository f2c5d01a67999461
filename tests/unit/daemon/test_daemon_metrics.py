"""Prometheus text rendering and the RSS reading."""

from __future__ import annotations

from pathlib import Path

from orchestrator.daemon.metrics import process_rss_bytes, render_metrics
from orchestrator.daemon.state import DaemonState
from tests.unit.daemon.helpers import make_issue


def test_label_values_are_escaped(state: DaemonState) -> None:
    state.record_detection([make_issue('we"ird\\name\nx')], duration_s=0, probes=1, unavailable=[],
                           new_state="recorded")
    text = render_metrics(state.metrics(), rss_bytes=None)
    assert 'vmrepair_issues{component="we\\"ird\\\\name\\nx"} 1' in text.splitlines()
    assert "process_resident_memory_bytes" not in text


def test_every_metric_has_help_and_type(state: DaemonState) -> None:
    lines = render_metrics(state.metrics(), rss_bytes=1).splitlines()
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    helped = {line.split()[2] for line in lines if line.startswith("# HELP")}
    assert names == helped
    assert "vmrepair_detection_runs_total" in names


def test_rss_is_read_from_proc_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t   51200 kB\nThreads:\t4\n")
    assert process_rss_bytes(status) == 51200 * 1024
    assert process_rss_bytes(tmp_path / "missing") is None
    real = process_rss_bytes()
    assert real is not None
    assert real > 1024 * 1024
