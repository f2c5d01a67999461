"""`vmrepair sessions` and `vmrepair report` with hostile session directories (issue 13 item 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.cli.main import main

GOOD = "20260101T000000Z-aaaaaa"
FIFO = "20260301T000000Z-ffffff"


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def sessions(cli_env: Path) -> Path:
    directory = cli_env / "sessions" / GOOD
    directory.mkdir(parents=True)
    (directory / "session.json").write_text(json.dumps(
        {"id": GOOD, "target": "local", "status": "repaired", "started_at": "2026-01-01T00:00:00+00:00",
         "summary": "restarted nginx"}))
    return cli_env / "sessions"


def test_a_fifo_session_is_shown_unreadable_without_hanging(sessions: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a FIFO as session.json made `vmrepair sessions` hang for ever."""
    (sessions / FIFO).mkdir()
    os.mkfifo(sessions / FIFO / "session.json")
    assert main(["sessions"]) == 0
    captured = capsys.readouterr()
    out, err = _flat(captured.out), _flat(captured.err)
    assert FIFO in out
    assert "unreadable" in out
    assert GOOD in out
    assert (f"warning: 1 session(s) could not be read; {FIFO}: unreadable session.json: not a "
            "regular file (a FIFO)") in err


def test_a_deeply_nested_session_is_shown_unreadable_in_json(sessions: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: deep nesting raised RecursionError (a traceback)."""
    (sessions / FIFO).mkdir()
    (sessions / FIFO / "session.json").write_text("[" * 100_000)
    assert main(["sessions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert [(r["id"], r["status"]) for r in rows] == [(FIFO, "unreadable"), (GOOD, "repaired")]
    assert rows[0]["unreadable"] == "nested deeper than 64 levels"


def test_report_of_a_fifo_session_says_why_without_hanging(sessions: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (sessions / FIFO).mkdir()
    os.mkfifo(sessions / FIFO / "session.json")
    assert main(["report", FIFO]) == 6
    assert (f"session {FIFO}: unreadable session.json (not a regular file (a FIFO))"
            in _flat(capsys.readouterr().err))


def test_a_symlinked_report_is_not_followed_but_rendered_again(sessions: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret").write_text("SECRET CONTENT\n")
    (sessions / GOOD / "report.md").symlink_to(tmp_path / "secret")
    assert main(["report", GOOD]) == 0
    out = capsys.readouterr().out
    assert "SECRET CONTENT" not in out
    assert out.startswith(f"# vmrepair report: session `{GOOD}`")
    assert not (sessions / GOOD / "report.md").is_symlink()
