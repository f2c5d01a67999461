"""A real `run_repair` (scripted stages, fake target) leaves what the metrics read: the detection
record (repaired issues dropped) and a session whose time to repair the collector counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.metrics.collector import persisted_registry
from orchestrator.metrics.detections import load_detections
from orchestrator.model import Component, SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import Script

APP = Component("app", units=(), config_paths=("/etc/app",), config_test=("app", "-t"))


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    app = App(make_settings(watch=WatchConfig((APP,), mounts=())))

    def broken_config(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (1, b"", b"app: bad line 3\n") if argv[:1] == ("app",) else (0, b"", b"")

    app.local = FakeTransport(broken_config)  # type: ignore[misc]  # the `local` target, for this test
    return app


def _samples(app: App) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(persisted_registry(app.settings)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_repaired_run_closes_its_issue_and_counts_its_time_to_repair(app: App, tmp_path: Path) -> None:
    script = Script(tmp_path)
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    assert outcome.status is SessionStatus.REPAIRED
    (record,), problems = load_detections(app.settings.state_dir)
    assert (record.target, record.issues, problems) == ("local", (), [])
    samples = _samples(app)
    assert samples[("vmrepair_repairs_total", (("outcome", "repaired"),))] == 1
    assert samples[("vmrepair_time_to_repair_seconds_count", ())] == 1
    assert 0 <= samples[("vmrepair_time_to_repair_seconds_sum", ())] < 60
    assert samples[("vmrepair_open_issues", (("severity", "critical"), ("target", "local")))] == 0
    assert samples[("vmrepair_last_detection_timestamp_seconds", (("target", "local"),))] == record.at


def test_an_issue_the_run_could_not_repair_stays_open(app: App, tmp_path: Path) -> None:
    script = Script(tmp_path, winners=[None])
    outcome = run_repair(app, "local", RunOptions(assume_yes=True), sandbox=script.new_sandbox,
                         stages=script.stages())
    assert outcome.status is SessionStatus.NOT_REPAIRED
    (record,), _ = load_detections(app.settings.state_dir)
    assert [i.component for i in record.issues] == ["app"]
    samples = _samples(app)
    assert samples[("vmrepair_time_to_repair_seconds_count", ())] == 0
    assert samples[("vmrepair_last_repair_outcome", (("outcome", "not_repaired"), ("target", "local")))] == 1
