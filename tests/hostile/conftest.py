"""The hostile-input suite (issue 13): every case feeds vmrepair input an attacker, a broken disk or a
careless operator could produce and asserts the exit code and the message a user sees — never a
traceback, never a hang, never a lost byte.

Cases run ``main()`` in-process (like tests/unit/cli) against a temporary state dir and libvirt's test
driver, so the suite needs no VM and never touches the machine's real state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_logging import restore_root_logger  # noqa: F401 - registers the autouse fixture

TEST_URI = "test:///default"


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def hostile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VMREPAIR_CONFIG -> a config on libvirt's test driver with the audit log in tmp;
    VMREPAIR_STATE_DIR -> tmp/state. Returns tmp_path."""
    config = tmp_path / "config.yaml"
    config.write_text(f"libvirt_uri: {TEST_URI}\nvm:\n  accel: tcg\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


@pytest.fixture
def cli(hostile_env: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``vmrepair ARGV...`` in-process; returns the exit code and what it printed. A traceback in
    the output fails the case by itself."""
    from orchestrator.cli.main import main

    def run(*argv: str) -> CliResult:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse exits on usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        result = CliResult(code, captured.out, captured.err)
        assert "Traceback (most recent call last)" not in result.text, result.text
        return result

    return run
