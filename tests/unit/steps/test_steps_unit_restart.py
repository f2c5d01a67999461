"""The ``unit`` step's start/restart: the restart count starts at the start the step asked for
(:mod:`orchestrator.systemd.counter`), and the action is replayed on the target."""

from __future__ import annotations

import pytest

from orchestrator.fixpkg import UnitOp
from orchestrator.fixpkg.ops import op_from_dict
from orchestrator.model import IssueKind
from orchestrator.playbooks.placeholders import parse_template
from orchestrator.steps.io import StepIO
from orchestrator.steps.kinds.unit import UnitStep, run_unit
from tests.unit.repair.fakes import SAMPLEAPP, FakeVm, context, issue, vm_agent

SAMPLEAPP_ISSUE = issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service")
SHOW = ("systemctl", "show", "--property=ActiveState,SubState,NRestarts", "--", "sampleapp.service")
RESET = ("systemctl", "reset-failed", "--", "sampleapp.service")


def _run(action: str, shown: str) -> tuple[StepIO, list[tuple[str, ...]]]:
    vm = FakeVm(vm_agent(), answers={("systemctl", "show"): (0, shown.encode(), b"")})
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE)
    io = StepIO(ctx, "strategy", "step")
    run_unit(UnitStep(action, parse_template("sampleapp.service")), ctx, io)
    return io, [tuple(record.argv) for record in io.commands]


@pytest.mark.parametrize("action", ["start", "restart"])
def test_a_start_systemds_own_restart_took_is_counted_from_the_step(action: str) -> None:
    io, argvs = _run(action, "ActiveState=active\nSubState=running\nNRestarts=1\n")
    assert argvs == [("systemctl", action, "--", "sampleapp.service"), SHOW, RESET]
    assert any("restart count was reset" in note for note in io.notes)
    (recorded,) = io.replay
    assert op_from_dict(recorded, "replay") == UnitOp("sampleapp.service", action)


def test_a_restart_that_flushed_the_count_adds_nothing() -> None:
    io, argvs = _run("restart", "ActiveState=active\nSubState=running\nNRestarts=0\n")
    assert argvs == [("systemctl", "restart", "--", "sampleapp.service"), SHOW]
    assert io.notes == []


def test_a_unit_that_died_again_keeps_its_count() -> None:
    _, argvs = _run("restart", "ActiveState=activating\nSubState=auto-restart\nNRestarts=1\n")
    assert RESET not in argvs
