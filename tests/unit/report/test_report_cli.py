"""`vmrepair sessions` and `vmrepair report ID` in-process, on a temporary state dir."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import output, sessions
from orchestrator.model import SessionStatus
from orchestrator.session.store import Session, new_session

Cli = Callable[[list[str]], int]


def _flat(text: str) -> str:
    """rich wraps long lines at the console width; compare messages without the wrapping."""
    return " ".join(text.split())


def _session(state_dir: Path, target: str, status: SessionStatus, summary: str) -> Session:
    session = new_session(state_dir / "sessions", target)
    with session.stage("detect") as record:
        record.detail = "1 issue(s)"
    session.finish(status, summary)
    return session


def test_sessions_when_there_are_none(cli: Cli, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sessions"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no sessions in" in _flat(captured.err)
    assert cli(["sessions", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"sessions": []}


def test_sessions_table_newest_first_with_hostile_summary(cli: Cli, state_dir: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    old = _session(state_dir, "local", SessionStatus.HEALTHY, "fine")
    new = _session(state_dir, "vm:web", SessionStatus.NOT_REPAIRED, "[red]x[/red]\x1b[2J")
    (state_dir / "sessions" / old.id).rename(state_dir / "sessions" / "20000101T000000Z-000000")
    assert cli(["sessions"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert new.id in out  # never cut or wrapped, even at 80 columns
    monkeypatch.setattr(output.out_console, "width", 200)
    assert cli(["sessions"]) == 0
    wide = capsys.readouterr().out
    assert "[red]x[/red]\\x1b[2J" in wide  # markup shown literally, the escape made visible
    assert out.index(new.id) < out.index(old.id)  # sorted by directory name, newest first
    assert "not_repaired" in out
    assert "healthy" in out


def test_sessions_json(cli: Cli, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.REPAIRED, "nginx: repaired")
    assert cli(["sessions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert [(r["id"], r["target"], r["status"], r["summary"]) for r in rows] == [
        (session.id, "local", "repaired", "nginx: repaired")]
    assert set(rows[0]) == {"id", "target", "status", "started_at", "finished_at", "summary", "report",
                            "exit_code"}


def test_report_renders_when_missing_and_prints_it(cli: Cli, state_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.HEALTHY, "all good")
    assert cli(["report", session.id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# vmrepair report: session `{session.id}`\n")
    assert "**Status: HEALTHY** — all good" in out
    assert (session.dir / "report.md").read_text() == out


def test_report_is_rerendered_when_older_than_the_evidence(cli: Cli, state_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.HEALTHY, "all good")
    report = session.dir / "report.md"
    report.write_text("old report\n")
    os.utime(report, (0, 0))
    assert cli(["report", session.id]) == 0
    assert "**Status: HEALTHY**" in capsys.readouterr().out
    report.write_text("current report\n")  # newer than every JSON file: shown as-is
    assert cli(["report", session.id]) == 0
    assert capsys.readouterr().out == "current report\n"


def test_report_shown_even_if_it_cannot_be_saved(cli: Cli, state_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.ERROR, "connect: refused")
    (session.dir / "report.md").mkdir()  # the rename onto it fails
    assert cli(["report", session.id]) == 0
    captured = capsys.readouterr()
    assert "**Status: ERROR** — connect: refused" in captured.out
    assert "warning: report not saved" in _flat(captured.err)


def test_report_json(cli: Cli, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.REPAIRED, "ok")
    assert cli(["report", session.id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["session"]["id"] == session.id
    assert data["session"]["status"] == "repaired"
    paths = data["paths"]
    assert paths["directory"] == str(session.dir)
    assert paths["report"] == str(session.dir / "report.md")
    assert Path(paths["report"]).is_file()
    assert {"session.json", "timeline.json", "report.md", "evidence.jsonl"} <= set(paths["files"])


def test_unknown_session_lists_the_newest(cli: Cli, state_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ids = [_session(state_dir, "local", SessionStatus.HEALTHY, "x").id for _ in range(7)]
    assert cli(["report", "20000101T000000Z-abcdef"]) == 1
    err = _flat(capsys.readouterr().err)
    assert "error: no session 20000101T000000Z-abcdef in" in err
    newest = sorted(ids, reverse=True)[:5]
    assert f"remedy: newest: {', '.join(newest)}" in err


def test_unknown_session_without_any(cli: Cli, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["report", "20000101T000000Z-abcdef", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["remedy"] == "there are no sessions yet"


@pytest.mark.parametrize("bad", ["../../etc", "20260101T000000Z-ABCDEF", "20260101T000000Z-abcdef\n",
                                 "20260101T000000Z-abcdef/..", "", "x-abcdef"])
def test_malformed_ids_are_refused_before_any_file_access(bad: str, cli: Cli, state_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["report", bad]) == 2
    assert "is not a session id" in _flat(capsys.readouterr().err)
    assert not state_dir.exists()


def test_report_latest_is_the_newest_session(cli: Cli, state_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = _session(state_dir, "local", SessionStatus.HEALTHY, "old run")
    (state_dir / "sessions" / old.id).rename(state_dir / "sessions" / "20000101T000000Z-000000")
    new = _session(state_dir, "local", SessionStatus.NOT_REPAIRED, "new run")
    assert cli(["report", "latest"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# vmrepair report: session `{new.id}`\n")
    assert "new run" in out


def test_report_latest_without_sessions(cli: Cli, state_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (state_dir / "sessions").mkdir(parents=True)
    assert cli(["report", "latest"]) == 1
    err = _flat(capsys.readouterr().err)
    assert f"error: no sessions in {state_dir / 'sessions'}" in err
    assert "remedy: `vmrepair run` records one" in err


def test_report_html_is_written_and_printed(cli: Cli, state_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.HEALTHY, "all <b>good</b>")
    assert cli(["report", session.id, "--html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>")
    assert "all &lt;b&gt;good&lt;/b&gt;" in out
    assert (session.dir / "report.html").read_text() == out
    assert cli(["report", "latest", "--html", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"]["html"] == str(session.dir / "report.html")


def test_report_on_a_terminal_is_rendered(cli: Cli, state_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    session = _session(state_dir, "local", SessionStatus.HEALTHY, "all good")
    terminal = io.StringIO()
    monkeypatch.setattr(sessions, "out_console", Console(file=terminal, force_terminal=True, width=100,
                                                         markup=False, emoji=False, highlight=False))
    assert cli(["report", session.id]) == 0
    shown = terminal.getvalue()
    assert "\x1b[" in shown                     # styled by rich
    assert "**Status" not in shown              # Markdown rendered, not printed raw
    assert "Status: HEALTHY" in shown
    assert "Timeline: 1 stages" in shown        # a fold's title, which rich would drop as raw HTML
    assert "<details>" not in shown
    assert capsys.readouterr().out == ""
    assert (session.dir / "report.md").is_file()  # report.md is still kept up to date
