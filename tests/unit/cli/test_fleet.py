"""`vmrepair fleet stats`: the concordance table and its JSON, from the state store only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.fleet.signature import FaultSignature
from orchestrator.state import open_state
from orchestrator.state.outcomes import STAGE_REBOOT, STAGE_TARGET, OutcomeStore

FAULT = FaultSignature("nginx", "config_invalid", "config_invalid", "<pattern>", "debian-12")


def _record(state: Path) -> None:
    store = OutcomeStore(open_state(state / "state.db"))
    store.record("nginx-restore-offender", succeeded=True, signature=FAULT)
    store.record("nginx-restore-offender", succeeded=True, stage=STAGE_TARGET, signature=FAULT)
    store.record("nginx-restore-offender", succeeded=False, stage=STAGE_REBOOT, signature=FAULT)
    store.db.close()


def test_stats_as_json(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(cli_env)
    assert main(["fleet", "stats", "--json"]) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["signature"] == FAULT.fine
    assert signature["label"] == "nginx / config_invalid / config_invalid"
    assert signature["strategies"] == [{"strategy": "nginx-restore-offender",
                                        "vm": {"succeeded": 1, "tries": 1},
                                        "target": {"succeeded": 1, "tries": 1},
                                        "reboot": {"succeeded": 0, "tries": 1}}]


def test_stats_as_a_table(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(cli_env)
    assert main(["fleet", "stats"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "nginx-restore-offender" in line)
    cells = [cell.strip() for cell in row.strip("│┃| ").split("│")]
    assert cells == ["nginx / config_invalid / config_invalid", "debian-12", FAULT.fine[:8],
                     "nginx-restore-offender", "1/1", "1/1", "0/1"]


def test_stats_without_a_store_create_nothing(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "stats"]) == 0
    assert "no outcomes recorded yet" in capsys.readouterr().err
    assert not cli_env.exists()
