"""OutcomeStore: per-strategy (wins, tries) in one JSON file; a corrupt file is reported and ignored."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.pipeline.outcomes import OutcomeStore

LOGGER = "orchestrator.pipeline.outcomes"


def test_no_file_means_no_history(tmp_path: Path) -> None:
    assert OutcomeStore(tmp_path / "outcomes.json").load() == {}


def test_record_counts_wins_and_tries_per_strategy(tmp_path: Path) -> None:
    store = OutcomeStore(tmp_path / "outcomes.json")
    store.record("nginx-restore-baseline", succeeded=True)
    store.record("nginx-restore-baseline", succeeded=False)
    store.record("jsonl-quarantine", succeeded=False)
    assert store.load() == {"nginx-restore-baseline": (1, 2), "jsonl-quarantine": (0, 1)}
    # A new store on the same file sees the same history.
    assert OutcomeStore(store.path).load() == store.load()


def test_file_is_private_json_and_no_temp_file_is_left(tmp_path: Path) -> None:
    store = OutcomeStore(tmp_path / "outcomes.json")
    store.record("s", succeeded=True)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert json.loads(store.path.read_text()) == {"s": [1, 1]}
    assert [p.name for p in tmp_path.iterdir()] == ["outcomes.json"]


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"s": [1, 2]', b"[]", b'"text"', b'{"s": 3}', b'{"s": [1]}', b'{"s": [null, 1]}',
     b'{"s": ["x", 1]}', b'{"s": {"wins": 1, "tries": 2}}', b"\xff\xfe{}"],
    ids=["empty", "garbage", "truncated", "list", "string", "int-value", "short-pair", "null", "text",
         "object-value", "not-utf8"],
)
def test_corrupt_history_is_ignored_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outcomes.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert OutcomeStore(path).load() == {}
    assert f"ignoring unreadable outcome history {path}: " in caplog.text


def test_recording_over_a_corrupt_file_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outcomes.json"
    path.write_bytes(b"\x00\x00 torn")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        OutcomeStore(path).record("s", succeeded=True)
    assert OutcomeStore(path).load() == {"s": (1, 1)}


def test_a_failed_write_is_a_state_error(tmp_path: Path) -> None:
    store = OutcomeStore(tmp_path / "missing-dir" / "outcomes.json")
    with pytest.raises(StateError, match=r"cannot write .*outcomes\.json") as info:
        store.record("s", succeeded=True)
    assert info.value.remedy == "check free space and permissions of the state directory"
