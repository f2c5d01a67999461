"""The output layer prints user and guest text as is: rich never reads it as markup (issue 13, item 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.apply.recovery import RecoveryReport
from orchestrator.cli import main as cli_main
from orchestrator.cli import output
from orchestrator.errors import StateError

#: Text that rich would read as a closing tag, an opening tag, a style, an emoji and a trailing escape.
HOSTILE = ["[/x]", "[/]", "[bold]b[/bold]", "[red]r", ":smile:", "C:\\dir\\", "\\[/x]", "[link=x]y[/link]"]
CLI_DIR = Path(cli_main.__file__).parent


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_table_prints_title_columns_and_cells_verbatim(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    output.table(f"title {text}", [f"col {text}"], [[f"cell {text}"]])
    out = _flat(capsys.readouterr().out)
    for expected in (f"title {text}", f"col {text}", f"cell {text}"):
        assert expected in out


@pytest.mark.parametrize("text", HOSTILE)
def test_info_error_and_warning_print_verbatim(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    output.info(f"info {text}")
    output.error(f"message {text}")
    output.warning(f"careful {text}")
    err = capsys.readouterr().err
    assert f"info {text}" in err
    assert f"error: message {text}" in err
    assert f"warning: careful {text}" in err


def test_consoles_never_read_markup_or_emoji() -> None:
    for console in (output.out_console, output.err_console):
        assert console._markup is False
        assert console._emoji is False


def test_cli_modules_do_not_escape_on_their_own() -> None:
    """The output layer is the one place that keeps text from being read as markup: a module that
    still escapes would show backslashes, one that prints markup by hand could forget."""
    offenders = [path.name for path in sorted(CLI_DIR.glob("*.py"))
                 if re.search(r"rich\.markup|\[/\]|\[bold|\[red|\[green|\[yellow", path.read_text())]
    assert offenders == []


def test_recovery_warning_with_markup_in_the_error(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = RecoveryReport(recovered=[], errors=["target [/x]: unreachable"])
    monkeypatch.setattr("orchestrator.apply.recovery.recover_on_start", lambda app: report)
    assert cli_main._recover(object()) is report  # type: ignore[arg-type]
    assert "warning: not recovered: target [/x]: unreachable" in capsys.readouterr().err


def test_error_report_with_markup_in_message_and_remedy(capsys: pytest.CaptureFixture[str]) -> None:
    cli_main._report_error(StateError("cannot write [/x]\\", remedy="free space in [/y]"), as_json=False)
    err = capsys.readouterr().err
    assert "error: cannot write [/x]\\\n" in err  # a trailing backslash is not doubled
    assert "remedy: free space in [/y]" in err


@pytest.mark.parametrize(("raw", "shown"), [("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),
                                            ("a\rb", "a\\x0db"), ("bell\x07", "bell\\x07"),
                                            ("del\x7f", "del\\x7f"), ("two\nlines", "two\nlines")])
def test_control_characters_are_made_visible(raw: str, shown: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A lock holder's argv or a guest's text may carry terminal escapes: they never reach the terminal."""
    output.info(raw)
    output.error(raw)
    output.table("t", ["c"], [[raw.replace("\n", " ")]])
    captured = capsys.readouterr()
    assert shown in captured.err
    assert f"error: {shown}" in captured.err
    assert "\x1b" not in captured.out + captured.err
    assert shown.replace("\n", " ") in captured.out


LONG_PATH = "/var/lib/vmrepair/sessions/20260102T030405Z-1a2b3c/evidence/" + "deep/" * 30 + "report.md"


def test_off_a_terminal_a_table_keeps_long_cells_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """capsys is no terminal: a 200-character path and a long summary stay whole, so grep finds them."""
    summary = "nginx.service failed: " + "word " * 40
    output.table("sessions", ["report", "summary"], [[LONG_PATH, summary]])
    output.info(f"report: {LONG_PATH}")
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if LONG_PATH in line)
    assert summary.strip() in row
    assert "…" not in captured.out
    assert f"report: {LONG_PATH}\n" in captured.err


def test_on_a_terminal_the_table_still_fits_its_width(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # rich reads both from the environment at every print: a terminal 80 columns wide.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "80")
    output.table("sessions", ["report"], [[LONG_PATH]])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any(LONG_PATH in line for line in lines)


def test_an_explicit_width_still_wins(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output.out_console, "width", 60)
    output.table("t", ["report"], [[LONG_PATH]])
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 60


def test_piped_cli_output_is_not_wrapped(tmp_path: Path) -> None:
    """The real thing: `vmrepair ... | grep` in a child process whose stdout and stderr are pipes."""
    script = ("from orchestrator.cli import output\n"
              f"output.table('t', ['path'], [[{LONG_PATH!r}]])\n"
              f"output.error('cannot read ' + {LONG_PATH!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TTY_COMPATIBLE", "FORCE_COLOR")}
    env["PYTHONPATH"] = str(Path(cli_main.__file__).parents[2])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, check=True, cwd=tmp_path)
    assert any(LONG_PATH in line for line in done.stdout.splitlines())
    assert f"error: cannot read {LONG_PATH}\n" in done.stderr
