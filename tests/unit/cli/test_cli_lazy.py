"""`vmrepair COMMAND` builds the parser of COMMAND's module alone (orchestrator/cli/main.py): the
table of which module registers which command must match the modules, a command's parser must parse
what the whole parser parses, and a light command must not import the pipeline."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from orchestrator.cli.main import COMMAND_MODULES, MODULES, build_parser, command_of


def _registered(name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"orchestrator.cli.{name}").register(sub)
    return set(sub.choices)


def test_the_table_names_the_module_that_registers_each_command() -> None:
    found = {command: name for name in MODULES for command in _registered(name)}
    whole = {"completion", "manpage"}   # they describe every command: always the whole parser
    assert {c: m for c, m in found.items() if c not in whole} == COMMAND_MODULES
    assert whole <= set(found)


@pytest.mark.parametrize(("argv", "command"), [
    (["status"], "status"),
    (["--json", "status", "--debug"], "status"),
    (["--debug", "--json", "run", "--target", "local"], "run"),
    (["report", "latest"], "report"),
    (["watch", "gate", "install", "nginx.service"], "watch"),
    (["gate", "nginx.service"], "gate"),
    ([], None),
    (["--help"], None),
    (["-h", "status"], None),
    (["--version"], None),
    (["completion", "bash"], None),
    (["manpage"], None),
    (["no-such-command"], None),
])
def test_command_of(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


@pytest.mark.parametrize("argv", [
    ["--json", "status"],
    ["run", "--target", "vm:p1", "--yes", "--stable-period", "5", "--json"],
    ["watch", "gate", "install", "nginx.service"],
    ["report", "latest", "--html"],
    ["fleet", "stats", "--json"],
    ["quarantine", "release", "nginx"],
])
def test_a_commands_own_parser_parses_like_the_whole_parser(argv: list[str]) -> None:
    command = command_of(argv)
    assert command is not None
    own, whole = build_parser(command).parse_args(argv), build_parser().parse_args(argv)
    assert vars(own) == vars(whole)


def test_an_unknown_command_is_refused_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser(command_of(["no-such-command"])).parse_args(["no-such-command"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err and "'status'" in err and "'fleet'" in err


def test_status_does_not_import_the_pipeline_or_boot_diagnostics() -> None:
    """In a fresh interpreter (this one has imported everything): parse `status` as main does."""
    heavy = ("orchestrator.pipeline", "orchestrator.bootdiag", "orchestrator.fleet", "orchestrator.apply",
             "orchestrator.detect", "libvirt", "paramiko")
    code = ("import sys\n"
            "from orchestrator.cli.main import build_parser, command_of\n"
            "argv = ['status', '--json']\n"
            "build_parser(command_of(argv)).parse_args(argv)\n"
            f"print(','.join(sorted(m for m in sys.modules if m.startswith({heavy!r}))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=120)
    assert done.stdout.strip() == ""
