"""The ``unit`` step's enable/disable/mask/unmask: replayed as a unit_state whose precondition is the
``systemctl is-enabled`` answer the VM gave right before the action."""

from __future__ import annotations

import pytest

from orchestrator.errors import RepairStepError
from orchestrator.fixpkg import UnitStateOp
from orchestrator.fixpkg.ops import op_from_dict
from orchestrator.model import IssueKind
from orchestrator.playbooks.placeholders import parse_template
from orchestrator.steps.io import StepIO
from orchestrator.steps.kinds.unit import UnitSpec, UnitStep, run_unit
from tests.unit.repair.fakes import SAMPLEAPP, FakeVm, context, issue, vm_agent

SAMPLEAPP_ISSUE = issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service")


def _run(action: str, state: str, *, exit_status: int = 0) -> tuple[StepIO, list[tuple[str, ...]]]:
    vm = FakeVm(vm_agent(), answers={
        ("systemctl", "is-enabled"): (0 if state == "enabled" else 1, f"{state}\n".encode(), b""),
        ("systemctl", action): (exit_status, b"", b"failed\n" if exit_status else b""),
    })
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE)
    io = StepIO(ctx, "strategy", "step")
    run_unit(UnitStep(action, parse_template("sampleapp.service")), ctx, io)
    return io, [tuple(record.argv) for record in io.commands]


@pytest.mark.parametrize(("action", "state", "prior"), [
    ("enable", "enabled", "disabled"), ("disable", "disabled", "enabled"), ("mask", "masked", "enabled"),
    ("unmask", "unmasked", "masked"),
])
def test_state_actions_are_recorded_with_the_state_before(action: str, state: str, prior: str) -> None:
    io, argvs = _run(action, prior)
    assert argvs[:2] == [("systemctl", "is-enabled", "--", "sampleapp.service"),
                         ("systemctl", action, "--", "sampleapp.service")]
    (recorded,) = io.replay
    assert op_from_dict(recorded, "replay") == UnitStateOp("sampleapp.service", state, prior)
    assert io.unreplayable == []


def test_a_state_no_rollback_could_restore_is_unreplayable() -> None:
    io, _ = _run("disable", "linked")
    assert io.replay == []
    assert io.unreplayable == ["systemctl disable sampleapp.service (the unit was linked)"]


def test_a_failed_action_records_nothing() -> None:
    with pytest.raises(RepairStepError, match=r"systemctl mask sampleapp\.service exited 1"):
        _run("mask", "enabled", exit_status=1)


def test_mask_and_unmask_are_in_the_schema() -> None:
    assert UnitSpec(name="x.service", action="mask").action == "mask"
    assert UnitSpec(name="x.service", action="unmask").action == "unmask"
