"""Bounded reading of a session's JSON files: never blocks on a FIFO, never follows a symlink,
never reads a huge file, never recurses without bound (issue 13 item 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import StateError
from orchestrator.session.jsonfile import MAX_JSON_DEPTH, read_json_file, scan_sessions
from orchestrator.session.store import list_sessions, load_session_meta

GOOD = "20260101T000000Z-aaaaaa"
BAD = "20260201T000000Z-bbbbbb"


def _reason(path: Path, **kwargs: int) -> str:
    with pytest.raises(StateError) as caught:
        read_json_file(path, **kwargs)
    return caught.value.message


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"id": 1}')
    assert read_json_file(tmp_path / "a.json") == {"id": 1}


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a.json")
    assert _reason(tmp_path / "a.json") == "not a regular file (a FIFO)"


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target.json").write_text("{}")
    (tmp_path / "a.json").symlink_to(tmp_path / "target.json")
    assert _reason(tmp_path / "a.json") == "a symbolic link (not followed)"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.json").mkdir()
    assert _reason(tmp_path / "a.json") == "not a regular file (a directory)"


def test_a_file_over_the_cap_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(" " * 101)
    assert _reason(tmp_path / "a.json", max_bytes=100) == "101 bytes, over the 100-byte cap"


@pytest.mark.parametrize("opener", ["[", "{\"a\":"])
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, opener: str) -> None:
    (tmp_path / "a.json").write_text(opener * 100_000)
    assert _reason(tmp_path / "a.json") == f"nested deeper than {MAX_JSON_DEPTH} levels"


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"s": "[" * 1000 + '\\"{'}))
    assert read_json_file(tmp_path / "a.json") == {"s": "[" * 1000 + '\\"{'}


@pytest.mark.parametrize(("content", "why"), [
    (b"{", "not valid JSON (Expecting"), (b"\xff", "not valid JSON"), (b"1" * 5000, "not valid JSON"),
])
def test_malformed_content_says_why(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "a.json").write_bytes(content)
    assert _reason(tmp_path / "a.json").startswith(why)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    assert _reason(tmp_path / "a.json") == "cannot read: No such file or directory"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_json_or_a_state_error(tmp_path_factory: pytest.TempPathFactory,
                                                    data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "a.json"
    path.write_bytes(data)
    try:
        read_json_file(path)
    except StateError as exc:
        assert exc.message


# -- listing --------------------------------------------------------------------------------------

def _session(sessions: Path, name: str) -> Path:
    directory = sessions / name
    directory.mkdir(parents=True)
    return directory / "session.json"


def test_a_fifo_session_is_listed_as_unreadable_and_hides_nothing(tmp_path: Path) -> None:
    """Regression: a FIFO as session.json made `vmrepair sessions` and /sessions hang for ever."""
    _session(tmp_path, GOOD).write_text(json.dumps({"id": GOOD, "status": "repaired"}))
    os.mkfifo(_session(tmp_path, BAD))
    rows = scan_sessions(tmp_path)
    assert rows == [
        {"id": BAD, "status": "unreadable", "unreadable": "not a regular file (a FIFO)",
         "summary": "unreadable session.json: not a regular file (a FIFO)"},
        {"id": GOOD, "status": "repaired"},
    ]
    assert list_sessions(tmp_path) == [{"id": GOOD, "status": "repaired"}]


def test_deeply_nested_session_meta_is_a_state_error_not_a_recursion_error(tmp_path: Path) -> None:
    """Regression: json.loads raised RecursionError (a traceback) on deep nesting."""
    _session(tmp_path, BAD).write_text("[" * 200_000)
    with pytest.raises(StateError, match=f"^session {BAD}: unreadable session.json "
                                         rf"\(nested deeper than {MAX_JSON_DEPTH} levels\)"):
        load_session_meta(tmp_path / BAD)


def test_scan_reads_only_the_newest_limit_sessions(tmp_path: Path) -> None:
    for day in range(1, 10):
        name = f"2026010{day}T000000Z-aaaaaa"
        _session(tmp_path, name).write_text(json.dumps({"id": name}))
    assert [r["id"] for r in scan_sessions(tmp_path, limit=2)] == [
        "20260109T000000Z-aaaaaa", "20260108T000000Z-aaaaaa"]
