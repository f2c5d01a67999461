"""The persisted collector over a populated state dir: values, parsing, and a broken source."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.metrics.collector import PersistedCollector, StatePaths, new_registry
from tests.unit.metrics.populated import T0, populate, write_session

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(paths: StatePaths) -> tuple[str, Samples]:
    return _scrape_registry(new_registry(PersistedCollector(paths)))


def test_every_value_comes_from_the_state_dir(tmp_path: Path) -> None:
    _, samples = scrape(populate(tmp_path / "state"))
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 2
    assert samples[("vmrepair_repairs_total", (("outcome", "error"),))] == 1
    # The dry run repaired nothing: not counted.
    assert samples[("vmrepair_repairs_total", (("outcome", "not_repaired"),))] == 0
    assert samples[("vmrepair_last_repair_outcome", (("outcome", "repaired"), ("target", "local")))] == 1
    # Time to repair: detection ended 5 s after T0; the runs finished at 125 s and 25 s.
    assert samples[("vmrepair_time_to_repair_seconds_count", ())] == 2
    assert samples[("vmrepair_time_to_repair_seconds_sum", ())] == pytest.approx(140.0)
    assert samples[("vmrepair_time_to_repair_seconds_bucket", (("le", "30.0"),))] == 1
    assert samples[("vmrepair_time_to_repair_seconds_bucket", (("le", "120.0"),))] == 2
    # The newest session with a VM: ready in 4.5 s.
    assert samples[("vmrepair_vm_last_ready_ok", ())] == 1
    assert samples[("vmrepair_vm_ready_seconds", ())] == 4.5
    assert samples[("vmrepair_vm_last_boot_timestamp_seconds", ())] == T0 + 20
    assert samples[("vmrepair_strategy_outcomes_total",
                    (("result", "ok"), ("stage", "vm"), ("strategy", "restart-unit")))] == 1
    assert samples[("vmrepair_strategy_outcomes_total",
                    (("result", "failed"), ("stage", "vm"), ("strategy", "restore-baseline")))] == 1
    assert samples[("vmrepair_open_issues", (("severity", "critical"), ("target", "local")))] == 1
    assert samples[("vmrepair_open_issues", (("severity", "info"), ("target", "local")))] == 0
    assert samples[("vmrepair_open_issues_oldest_timestamp_seconds",
                    (("severity", "warning"), ("target", "local")))] == T0
    assert samples[("vmrepair_last_detection_timestamp_seconds", (("target", "local"),))] == T0
    assert samples[("vmrepair_quarantined_components", ())] == 1
    since = samples[("vmrepair_quarantined_since_timestamp_seconds", (("component", "sampleapp"),))]
    assert since == T0 + 600
    assert {v for (name, _), v in samples.items() if name == "vmrepair_metrics_source_ok"} == {1}


def test_an_empty_state_dir_reports_zeros_not_errors(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _, samples = scrape(StatePaths(state / "state.db", state / "sessions", state, state / "quarantine"))
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 0
    assert samples[("vmrepair_quarantined_components", ())] == 0
    assert samples[("vmrepair_time_to_repair_seconds_count", ())] == 0
    assert {v for (name, _), v in samples.items() if name == "vmrepair_metrics_source_ok"} == {1}
    assert not state.exists(), "a scrape must not create the state dir or the store"


def test_a_corrupt_store_hides_only_its_own_metrics(tmp_path: Path) -> None:
    paths = populate(tmp_path / "state")
    paths.state_db.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        paths.state_db.with_name(paths.state_db.name + suffix).unlink(missing_ok=True)
    text, samples = scrape(paths)
    assert samples[("vmrepair_metrics_source_ok", (("source", "state_db"),))] == 0
    assert samples[("vmrepair_metrics_source_ok", (("source", "sessions"),))] == 1
    assert "vmrepair_strategy_outcomes_total" not in text
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 2


def test_sessions_are_cached_and_new_or_changed_ones_are_read(tmp_path: Path) -> None:
    paths = populate(tmp_path / "state")
    registry = new_registry(PersistedCollector(paths))
    generate_latest(registry)
    oldest = paths.sessions_dir / "20260101T000001Z-aaaaaa"
    # Cached: removing what the cache already holds (the timeline) changes nothing ...
    (oldest / "timeline.json").unlink()
    write_session(paths.sessions_dir, "20260101T000005Z-eeeeee", status="not_reproduced")
    _, samples = _scrape_registry(registry)
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 2
    assert samples[("vmrepair_time_to_repair_seconds_count", ())] == 2
    assert samples[("vmrepair_repairs_total", (("outcome", "not_reproduced"),))] == 1
    # ... but a session.json that changed is read again.
    (oldest / "session.json").write_text("{")
    _, samples = _scrape_registry(registry)
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 1
    assert samples[("vmrepair_repairs_total", (("outcome", "unreadable"),))] == 1


def _scrape_registry(registry: CollectorRegistry) -> tuple[str, Samples]:
    text = generate_latest(registry).decode()
    return text, {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for family in text_string_to_metric_families(text) for s in family.samples}
