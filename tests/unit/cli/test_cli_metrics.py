"""The metrics textfile after `vmrepair run` and `detect`: written whatever the command's outcome,
never changing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cli.main import main
from tests.unit.metrics.populated import populate


@pytest.mark.parametrize("command", ["run", "detect"])
def test_the_textfile_is_written_after_the_command_even_when_it_failed(
        cli_env: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    populate(cli_env)
    textfile = cli_env.parent / "textfile"
    textfile.mkdir()
    assert main([command, "--target", "nope://x"]) == 2
    assert "invalid target 'nope://x'" in capsys.readouterr().err
    text = (textfile / "vmrepair.prom").read_text()
    samples = {s.name: s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name == "vmrepair_quarantined_components"}
    assert samples == {"vmrepair_quarantined_components": 1}


def test_other_commands_leave_the_textfile_alone(cli_env: Path) -> None:
    textfile = cli_env.parent / "textfile"
    textfile.mkdir()
    main(["doctor", "--json"])
    assert list(textfile.iterdir()) == []


def test_a_textfile_that_cannot_be_written_does_not_change_the_exit_code(
        cli_env: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    textfile = cli_env.parent / "textfile"
    (textfile / "vmrepair.prom").mkdir(parents=True)  # in the way of the rename
    assert main(["detect", "--target", "nope://x"]) == 2
    assert "metrics textfile not written: cannot write" in caplog.text
    assert "invalid target" in capsys.readouterr().err
