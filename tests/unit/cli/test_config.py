"""`vmrepair config check|show` in-process: exit codes, errors naming the file at fault, and the source
of each effective value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main


def _flat(text: str) -> str:
    return "".join(text.split())


@pytest.fixture
def config_d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config.d"
    directory.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"config_dropin_dir: {directory}\nvm: {{accel: tcg}}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.delenv("VMREPAIR_STATE_DIR", raising=False)
    monkeypatch.delenv("VMREPAIR_SOCKET", raising=False)
    return directory


def test_check_ok_lists_the_files(config_d: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (config_d / "10-ssh.yaml").write_text("ssh: {connect_timeout_s: 9}\n")
    assert main(["config", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True, "files": [str(tmp_path / "config.yaml"), str(config_d / "10-ssh.yaml")]}


def test_check_names_the_bad_dropin_and_exits_2(config_d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = config_d / "20-bad.yaml"
    bad.write_text("retention: {sessions_days: 0}\n")
    assert main(["config", "check"]) == 2
    err = _flat(capsys.readouterr().err)
    assert _flat(f"error: {bad}: retention.sessions_days: Input should be greater than 0") in err


def test_check_one_file_even_when_the_installed_config_is_broken(
        config_d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text("no_such_key: 1\n")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("retention: {enabled: false}\n")
    assert main(["config", "check", str(candidate)]) == 0
    assert _flat(f"ok: {candidate}") in _flat(capsys.readouterr().err)
    candidate.write_text("retention: {enabled: maybe}\n")
    assert main(["config", "check", str(candidate)]) == 2
    assert _flat(f"{candidate}: retention.enabled: Input should be a valid boolean") in _flat(
        capsys.readouterr().err)


def _values(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    data = json.loads(capsys.readouterr().out)
    return {row["key"]: (row["value"], row["source"]) for row in data["values"]}


def test_show_gives_each_value_and_its_source(config_d: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    dropin = config_d / "50-retention.yaml"
    dropin.write_text("retention: {backups_days: 30}\n")
    monkeypatch.setenv("VMREPAIR_STATE_DIR", "/srv/state")
    assert main(["config", "show", "--json"]) == 0
    values = _values(capsys)
    assert values["vm.accel"] == ("tcg", f"file {tmp_path / 'config.yaml'}")
    assert values["retention.backups_days"] == (30, f"drop-in {dropin}")
    assert values["retention.sessions_days"] == (90, "default")
    assert values["state_dir"] == ("/srv/state", "environment VMREPAIR_STATE_DIR")
    assert values["repair.allowed_roots"][1] == "default"


def test_show_of_an_invalid_config_is_the_check_error(config_d: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (config_d / "x.yaml").write_text("vm: {accel: warp}\n")
    assert main(["config", "show"]) == 2
    assert _flat(f"{config_d / 'x.yaml'}: vm.accel:") in _flat(capsys.readouterr().err)
