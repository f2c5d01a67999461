"""vmrepair.prom: written atomically for node_exporter, skipped without its directory, never fatal."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.metrics.collector import PersistedCollector, new_registry
from orchestrator.metrics.textfile import FILE_NAME, write_textfile, write_textfile_quietly
from tests.unit.metrics.populated import populate


def test_the_textfile_parses_and_is_readable_by_node_exporter(tmp_path: Path) -> None:
    registry = new_registry(PersistedCollector(populate(tmp_path / "state")))
    out = tmp_path / "textfile"
    out.mkdir()
    path = write_textfile(registry, out)
    assert path == out / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in out.iterdir()] == [FILE_NAME], "no temp file is left behind"
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert families["vmrepair_repairs"].type == "counter"
    assert families["vmrepair_time_to_repair_seconds"].type == "histogram"
    assert families["vmrepair_open_issues"].type == "gauge"


def test_no_directory_means_no_node_exporter_and_no_file(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.metrics.textfile")
    registry = new_registry(PersistedCollector(populate(tmp_path / "state")))
    assert write_textfile(registry, tmp_path / "missing") is None
    assert not (tmp_path / "missing").exists()
    assert "does not exist (no node_exporter here)" in caplog.text


def test_a_failing_write_is_logged_and_never_raised(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    registry = new_registry(PersistedCollector(populate(tmp_path / "state")))
    out = tmp_path / "textfile"
    out.mkdir()
    (out / FILE_NAME).mkdir()  # a directory in the file's place: the rename fails
    assert write_textfile_quietly(registry, out) is None
    assert f"metrics textfile not written: cannot write {out / FILE_NAME}" in caplog.text
    assert [p.name for p in out.iterdir()] == [FILE_NAME]


def test_a_crashing_collector_does_not_escape_either(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def collect(self) -> list[object]:
            raise RuntimeError("bug")

    registry = new_registry()
    registry.register(Broken())  # type: ignore[arg-type]
    out = tmp_path / "textfile"
    out.mkdir()
    assert write_textfile_quietly(registry, out) is None
    assert "metrics textfile not written" in caplog.text
