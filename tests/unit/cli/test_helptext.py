"""Every command's --help carries its examples and exit codes, from the one table in helptext.py."""

from __future__ import annotations

import argparse

import pytest

from orchestrator import errors
from orchestrator.cli import helptext
from orchestrator.cli.main import build_parser
from orchestrator.jsonl.report import EXIT_CODES as LOG_EXIT_CODES
from orchestrator.model import RUN_EXIT_CODES


def _commands() -> dict[str, argparse.ArgumentParser]:
    return {path: child for path, child, _ in helptext.command_parsers(build_parser())}


def _error_classes(root: type[errors.VmRepairError]) -> list[type[errors.VmRepairError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _error_classes(sub)
    return found


def test_every_command_has_an_entry() -> None:
    """A new command needs its examples and exit codes in helptext.HELP (a group like `vm` does not)."""
    missing = [path for path, child in _commands().items()
               if helptext.is_leaf(child) and path not in helptext.HELP]
    assert missing == [], f"add these commands to orchestrator/cli/helptext.py HELP: {missing}"


def test_no_entry_names_a_command_that_does_not_exist() -> None:
    stale = sorted(set(helptext.HELP) - set(_commands()))
    assert stale == [], f"HELP has entries for commands that are not registered: {stale}"


def test_every_entry_has_an_example_of_its_own_command() -> None:
    for path, entry in helptext.HELP.items():
        assert entry.examples, path
        assert entry.exits, path
        if path != "daemon":  # its examples start it the way it is meant to be run: through systemd
            assert any(example.startswith(f"vmrepair {path}") for example in entry.examples), path


def test_every_error_exit_code_is_documented() -> None:
    codes = {cls.exit_code for cls in _error_classes(errors.VmRepairError)}
    documented = {code for code, _ in helptext.ERROR_EXIT_CODES}
    assert codes <= documented, f"error exit codes missing from ERROR_EXIT_CODES: {codes - documented}"
    assert 130 in documented  # main() returns it on Ctrl-C


def test_run_and_log_codes_match_their_source() -> None:
    for path in ("run", "demo"):
        assert {code for code, _ in helptext.HELP[path].exits} == {str(c) for c in RUN_EXIT_CODES.values()}
    for path in ("log verify", "log repair"):
        assert {code for code, _ in helptext.HELP[path].exits} == {str(c) for c in LOG_EXIT_CODES.values()}


@pytest.mark.parametrize("argv", [["detect", "--help"], ["vm", "exec", "--help"], ["run", "--help"]])
def test_help_shows_examples_and_exit_codes_unwrapped(argv: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    entry = helptext.HELP[" ".join(argv[:-1])]
    assert "examples:" in out
    assert "exit status:" in out
    for example in entry.examples:
        assert f"  {example}\n" in out  # the raw formatter keeps each example on its own line
    for code, meaning in entry.exits:
        assert any(line.split() == [code, *meaning.split()] for line in out.splitlines()), (code, meaning)


def test_a_command_without_description_gets_its_one_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["detect", "--help"])
    assert "Probe a target and list its issues" in capsys.readouterr().out


def test_top_level_help_lists_every_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    lines = [line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines()]
    shown = {int(parts[0]): parts[1] for parts in lines if len(parts) == 2 and parts[0].isdigit()}
    for code, meaning in helptext.ERROR_EXIT_CODES:
        assert shown.get(code) == meaning
