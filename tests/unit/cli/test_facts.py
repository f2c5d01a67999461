"""`vmrepair facts`: read-only, through the target's transport (here `local`: this Debian machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli.main import main

DPKG_STATUS = Path("/var/lib/dpkg/status")
pytestmark = pytest.mark.skipif(not DPKG_STATUS.exists(),
                                reason="needs a Debian-like machine (dpkg) to read facts from")


def test_facts_as_json_of_this_machine(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", "--target", "local", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["target"] == "local"
    assert facts["os"]["id"] and facts["arch"]
    assert any(p["name"] == "dpkg" for p in facts["packages"])


def test_facts_for_people_summarise_and_change_nothing(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = DPKG_STATUS.stat().st_mtime_ns
    assert main(["facts", "--target", "local"]) == 0
    out = capsys.readouterr()
    assert "local: " in out.out + out.err and " packages (" in out.out + out.err
    assert DPKG_STATUS.stat().st_mtime_ns == before
