"""Fixtures of the report tests: a state dir and config for the CLI, and main() with our commands."""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main as cli_main
from orchestrator.cli import sessions
from tests.cli_logging import restore_root_logger  # noqa: F401 - registers the autouse fixture


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VMREPAIR_STATE_DIR -> tmp (not created); VMREPAIR_CONFIG -> an empty config file."""
    config = tmp_path / "config.yaml"
    config.write_text("")
    state = tmp_path / "state"
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(state))
    return state


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


@pytest.fixture
def cli(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """``orchestrator.cli.main.main`` with `sessions` and `report` registered.

    main.py does not wire orchestrator.cli.sessions yet; until it does, register it next to `vm`
    (the last module main registers). Once it is wired this fixture changes nothing.
    """
    if "sessions" not in _commands(cli_main.build_parser()):
        real_vm = cli_main.vm

        def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
            real_vm.register(sub)
            sessions.register(sub)

        monkeypatch.setattr(cli_main, "vm", types.SimpleNamespace(register=register))
    return cli_main.main
