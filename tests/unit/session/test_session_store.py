"""Session directories: layout and permissions, evidence lines, stage timing, listing, cap_text."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from orchestrator.errors import PipelineError, StateError
from orchestrator.model import SessionStatus
from orchestrator.session.owner import this_process
from orchestrator.session.store import (
    Session,
    cap_text,
    list_sessions,
    load_session_meta,
    new_session,
)

HOSTILE = "line1\nline2\r\x1b[31mred\x00\u2028\u0085end\"}{"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def events(session: Session) -> list[dict[str, object]]:
    text = (session.dir / "evidence.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return new_session(tmp_path / "sessions", "vm:web")


# -- new_session ----------------------------------------------------------------------------------

def test_new_session_layout_and_private_permissions(tmp_path: Path) -> None:
    sessions_dir = tmp_path / "state" / "sessions"
    session = new_session(sessions_dir, "ssh://root@db1:22")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", session.id)
    assert session.dir == sessions_dir / session.id
    assert (mode(sessions_dir), mode(session.dir)) == (0o700, 0o700)
    assert [p.name for p in session.dir.iterdir()] == ["session.json"]
    assert mode(session.dir / "session.json") == 0o600
    meta = load_session_meta(session.dir)
    assert meta == {"id": session.id, "target": "ssh://root@db1:22", "started_at": session.started_at,
                    "status": "running", "owner": this_process().as_dict()}


def test_two_sessions_get_different_ids(tmp_path: Path) -> None:
    first, second = new_session(tmp_path, "local"), new_session(tmp_path, "local")
    assert first.id != second.id


def test_sessions_dir_that_is_a_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "sessions").write_text("")
    with pytest.raises(StateError, match=r"cannot create directory .*/sessions: File exists"):
        new_session(tmp_path / "sessions", "local")


# -- event ----------------------------------------------------------------------------------------

def test_each_event_is_one_private_json_line(session: Session) -> None:
    session.event("detect", "started")
    session.event("detect", "found", issues=2, path=Path("/etc/nginx"))
    path = session.dir / "evidence.jsonl"
    assert mode(path) == 0o600
    records = events(session)
    assert [(r["stage"], r["event"]) for r in records] == [("detect", "started"), ("detect", "found")]
    assert records[1]["issues"] == 2
    assert records[1]["path"] == "/etc/nginx"  # non-JSON values are stored as text
    assert all(r["session"] == session.id for r in records)


def test_a_hostile_string_stays_on_one_line(session: Session) -> None:
    session.event("capture", "output", text=HOSTILE, **{"key\nwith newline": HOSTILE})
    raw = (session.dir / "evidence.jsonl").read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n")
    assert raw.isascii()  # so no reader splits on U+2028 / U+0085 either
    (record,) = events(session)
    assert record["text"] == HOSTILE
    assert record["key\nwith newline"] == HOSTILE


def test_event_in_a_vanished_directory_is_a_state_error(session: Session) -> None:
    (session.dir / "session.json").unlink()
    session.dir.rmdir()
    with pytest.raises(StateError, match=f"cannot append evidence in {re.escape(str(session.dir))}: "
                                         "No such file or directory"):
        session.event("detect", "started")


# -- stage ----------------------------------------------------------------------------------------

def timeline(session: Session) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads((session.dir / "timeline.json").read_text())
    return data


def test_stage_that_completes_is_ok_with_a_duration(session: Session) -> None:
    with session.stage("detect") as record:
        assert record.status == "running"
    (entry,) = timeline(session)
    assert entry["name"] == "detect" and entry["status"] == "ok" and entry["detail"] == ""
    assert isinstance(entry["duration_s"], float) and entry["duration_s"] >= 0
    started, finished = events(session)
    assert (started["event"], finished["event"]) == ("started", "finished")
    assert finished["status"] == "ok" and finished["duration_s"] == entry["duration_s"]
    assert mode(session.dir / "timeline.json") == 0o600


def test_stage_that_raises_our_error_records_its_message(session: Session) -> None:
    with pytest.raises(PipelineError), session.stage("sandbox"):
        raise PipelineError("troubleshooting VM did not boot", stage="sandbox")
    (entry,) = timeline(session)
    assert (entry["status"], entry["detail"]) == ("failed", "troubleshooting VM did not boot")
    assert events(session)[-1]["detail"] == "troubleshooting VM did not boot"


def test_stage_that_raises_anything_else_records_type_and_escaped_message(session: Session) -> None:
    with pytest.raises(ValueError, match="boom"), session.stage("diagnose"):
        raise ValueError("boom\x1b[2J")
    assert timeline(session)[0]["detail"] == "ValueError: boom\\x1b[2J"


def test_stage_keeps_a_status_the_body_set(session: Session) -> None:
    with session.stage("baseline") as record:
        record.status, record.detail = "skipped", "no baseline recorded for this target"
    (entry,) = timeline(session)
    assert (entry["status"], entry["detail"]) == ("skipped", "no baseline recorded for this target")


def test_timeline_lists_stages_in_order(session: Session) -> None:
    with session.stage("detect"):
        pass
    with session.stage("triage"):
        pass
    assert [e["name"] for e in timeline(session)] == ["detect", "triage"]


# -- write_json / finish --------------------------------------------------------------------------

def test_write_json_replaces_the_file_atomically(session: Session) -> None:
    session.write_json("detect", {"issues": [1]})
    path = session.write_json("detect", {"issues": [], "where": Path("/etc")})
    assert path == session.dir / "detect.json"
    assert path.read_text() == json.dumps({"issues": [], "where": "/etc"}, indent=2) + "\n"
    assert mode(path) == 0o600
    assert not [p for p in session.dir.iterdir() if p.name.endswith(".tmp")]


def test_finish_records_status_summary_and_end_time(session: Session) -> None:
    session.set_meta(issues=["nginx:config_invalid:0123abcd"])
    session.finish(SessionStatus.REPAIRED, "nginx config restored")
    meta = load_session_meta(session.dir)
    assert session.status is SessionStatus.REPAIRED
    assert (meta["status"], meta["summary"]) == ("repaired", "nginx config restored")
    assert meta["issues"] == ["nginx:config_invalid:0123abcd"]
    assert meta["finished_at"] >= meta["started_at"]


# -- listing --------------------------------------------------------------------------------------

def write_meta(sessions_dir: Path, name: str, content: bytes | None) -> None:
    (sessions_dir / name).mkdir(parents=True)
    if content is not None:
        (sessions_dir / name / "session.json").write_bytes(content)


def test_list_sessions_newest_first_skipping_unreadable(tmp_path: Path) -> None:
    sessions_dir = tmp_path / "sessions"
    for name in ("20260101T000000Z-aaaaaa", "20260301T000000Z-cccccc", "20260201T000000Z-bbbbbb"):
        write_meta(sessions_dir, name, json.dumps({"id": name}).encode())
    write_meta(sessions_dir, "20260401T000000Z-nojson", None)
    write_meta(sessions_dir, "20260402T000000Z-corrupt", b'{"id": "torn')
    write_meta(sessions_dir, "20260403T000000Z-notobj", b'["a list"]')
    (sessions_dir / "20260501T000000Z-file").write_text("{}")
    assert [m["id"] for m in list_sessions(sessions_dir)] == [
        "20260301T000000Z-cccccc", "20260201T000000Z-bbbbbb", "20260101T000000Z-aaaaaa"]


def test_list_sessions_without_a_directory_is_empty(tmp_path: Path) -> None:
    assert list_sessions(tmp_path / "nothing-yet") == []


@pytest.mark.parametrize(("content", "why"), [(None, "No such file"), (b"{", "Expecting"),
                                              (b"null", "not a JSON object")])
def test_unreadable_session_meta_names_the_session(tmp_path: Path, content: bytes | None, why: str) -> None:
    write_meta(tmp_path, "20260101T000000Z-abcdef", content)
    expected = f"^session 20260101T000000Z-abcdef: unreadable session.json .*{why}"
    with pytest.raises(StateError, match=expected):
        load_session_meta(tmp_path / "20260101T000000Z-abcdef")


# -- cap_text -------------------------------------------------------------------------------------

def test_control_characters_are_escaped_newline_and_tab_kept() -> None:
    assert cap_text("a\tb\nc\r\x1b[31m\x7f\x00") == "a\tb\nc\\x0d\\x1b[31m\\x7f\\x00"


def test_short_text_is_untouched() -> None:
    assert cap_text("nginx: configuration file /etc/nginx/nginx.conf test is successful") == (
        "nginx: configuration file /etc/nginx/nginx.conf test is successful")


def test_text_at_the_limit_has_no_note() -> None:
    assert cap_text("x" * 8, 8) == "x" * 8


def test_long_text_is_capped_with_a_note_of_what_was_dropped() -> None:
    assert cap_text("a" * 20, 8) == "aaaaaaaa\n[... 12 more characters not kept]"


def test_bytes_with_invalid_utf8_are_replaced_not_fatal() -> None:
    assert cap_text(b"ok \xff\xfe end \xc3\xa9") == "ok \ufffd\ufffd end \u00e9"


def test_bytes_are_capped_in_characters() -> None:
    assert cap_text(b"\xc3\xa9" * 10, 4) == "\u00e9" * 4 + "\n[... 6 more characters not kept]"


def test_escapes_count_toward_the_cap_and_are_never_split() -> None:
    assert cap_text("ab\x1bcd", 4) == "ab\n[... 3 more characters not kept]"


def test_the_note_counts_input_characters_left_out() -> None:
    # Ten NULs escape to 40 characters; a cap of 8 keeps two of them and drops eight.
    assert cap_text("\x00" * 10, 8) == "\\x00\\x00\n[... 8 more characters not kept]"
    # Escaping alone can push short input over the cap: the count is never zero or negative.
    assert cap_text("\x00" * 5, 8) == "\\x00\\x00\n[... 3 more characters not kept]"


def test_huge_input_keeps_only_the_cap() -> None:
    capped = cap_text("\x00" * 1_000_000 + "tail", 16)
    assert capped == "\\x00" * 4 + "\n[... 1000000 more characters not kept]"


def test_a_stage_is_in_the_timeline_as_running_while_it_runs(session: Session) -> None:
    """What a run killed inside a stage leaves: the stage named, still running (closed at next start)."""
    with session.stage("capture"):
        during = json.loads((session.dir / "timeline.json").read_text())
    assert [(e["name"], e["status"]) for e in during] == [("capture", "running")]
    after = json.loads((session.dir / "timeline.json").read_text())
    assert [(e["name"], e["status"]) for e in after] == [("capture", "ok")]
