"""The daemon's own metrics (prometheus_client collector) and the RSS reading."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.daemon.metrics import DaemonCollector, daemon_registry, process_rss_bytes
from orchestrator.daemon.state import DaemonState
from orchestrator.metrics.collector import PersistedCollector, new_registry
from tests.unit.daemon.helpers import make_issue
from tests.unit.metrics.populated import populate


def _text(state: DaemonState, rss: int | None) -> str:
    return generate_latest(new_registry(DaemonCollector(state, lambda: rss))).decode()


def test_label_values_are_escaped(state: DaemonState) -> None:
    state.record_detection([make_issue('we"ird\\name\nx')], duration_s=0, probes=1, unavailable=[],
                           new_state="recorded")
    text = _text(state, None)
    assert 'vmrepair_issues{component="we\\"ird\\\\name\\nx"} 1.0' in text.splitlines()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "vmrepair_issues"]
    assert family.samples[0].labels == {"component": 'we"ird\\name\nx'}
    assert "process_resident_memory_bytes" not in text


def test_every_metric_has_help_and_type(state: DaemonState) -> None:
    lines = _text(state, 1).splitlines()
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    helped = {line.split()[2] for line in lines if line.startswith("# HELP")}
    assert names == helped
    assert "vmrepair_detection_runs_total" in names
    assert "process_resident_memory_bytes" in names


def test_the_daemon_serves_its_own_and_the_persisted_metrics(state: DaemonState, tmp_path: Path) -> None:
    persisted = PersistedCollector(populate(tmp_path / "state"))
    text = generate_latest(daemon_registry(state, persisted, rss=lambda: None)).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"vmrepair_daemon_ready", "vmrepair_job_runs", "vmrepair_repairs", "vmrepair_open_issues",
            "vmrepair_time_to_repair_seconds"} <= names


def test_rss_is_read_from_proc_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t   51200 kB\nThreads:\t4\n")
    assert process_rss_bytes(status) == 51200 * 1024
    assert process_rss_bytes(tmp_path / "missing") is None
    real = process_rss_bytes()
    assert real is not None
    assert real > 1024 * 1024
