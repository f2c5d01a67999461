"""`vmrepair reboot status|now|schedule|cancel` in-process, against a state store in tmp.

The executor is always replaced by a fake (an autouse fixture): no test may ever reboot this machine.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from orchestrator.config.reboot import RebootSettings
from orchestrator.errors import LockHeldError
from orchestrator.reboot.notify import RebootEvent
from orchestrator.reboot.schedule import RebootScheduler
from orchestrator.reboot.store import RebootRecord
from orchestrator.state.db import open_state
from orchestrator.state.lock import StateLock


def _flat(text: str) -> str:
    return " ".join(text.split())


@dataclass
class FakeOutcome:
    txn_id: str
    status: str
    message: str

    @property
    def is_verified(self) -> bool:
        return self.status == "committed"

    def as_dict(self) -> dict[str, Any]:
        return {"txn": self.txn_id, "status": self.status, "message": self.message}


@dataclass
class FakeExecutor:
    """Stands in for orchestrator.reboot.executor: records calls, returns ``outcomes``."""

    lock_path: Path
    outcomes: list[FakeOutcome] = field(default_factory=list)
    calls: list[str | None] = field(default_factory=list)
    lock_was_held: list[bool] = field(default_factory=list)

    def run_due_reboots(self, app: object, *, target: str | None = None) -> list[FakeOutcome]:
        self.calls.append(target)
        probe = StateLock(self.lock_path)
        try:
            probe.acquire("probe")
        except LockHeldError:
            self.lock_was_held.append(True)
        else:
            probe.release()
            self.lock_was_held.append(False)
        return self.outcomes


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text("reboot:\n  policy: prompt\n  timezone: UTC\n")
    state = tmp_path / "state"
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(state))
    return state


@pytest.fixture(autouse=True)
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeExecutor]:
    fake = FakeExecutor(tmp_path / "state" / "vmrepair.lock")
    module = types.ModuleType("orchestrator.reboot.executor")
    module.run_due_reboots = fake.run_due_reboots  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orchestrator.reboot.executor", module)
    yield fake


class _Quiet:
    def notify(self, event: RebootEvent) -> None:
        return None


def _seed(state: Path, target: str = "vm:web", *, policy: str = "prompt", txn_id: str = "tx-1",
          reason: str = "fstab fix") -> RebootRecord:
    db = open_state(state / "state.db")
    try:
        scheduler = RebootScheduler(db, RebootSettings(policy="prompt"), _Quiet(), tz=dt.UTC)
        return scheduler.request(target, txn_id=txn_id, reason=reason, policy=policy)
    finally:
        db.close()


def _json(out: str) -> dict[str, Any]:
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


# -- status ---------------------------------------------------------------------------------------------

def test_status_when_nothing_is_pending(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reboot", "status"]) == 0
    assert "no reboots pending" in capsys.readouterr().err
    assert main(["reboot", "status", "--json"]) == 0
    assert _json(capsys.readouterr().out) == {"reboots": []}


def test_status_lists_pending_reboots(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _seed(state_dir)
    _seed(state_dir, "vm:db1", policy="automatic", txn_id="tx-2", reason="grub fix")
    assert main(["reboot", "status", "--target", "vm:web", "--json"]) == 0
    [shown] = _json(capsys.readouterr().out)["reboots"]
    assert (shown["id"], shown["target"], shown["state"], shown["policy"]) == (
        record.id, "vm:web", "waiting_operator", "prompt")
    assert (shown["txn_ids"], shown["reason"]) == (["tx-1"], "fstab fix")
    assert shown["when"].startswith("when the operator approves")
    assert main(["reboot", "status"]) == 0
    out = _flat(capsys.readouterr().out)
    for text in ("target", "support ref", "vm:web", "waiting_operator", "prompt", "tx-1", "vm:db1",
                 "scheduled", "automatic", "tx-2"):
        assert text in out


def test_status_refuses_a_bad_target(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reboot", "status", "--target", "web"]) == 2
    err = _flat(capsys.readouterr().err)
    assert "error: invalid target 'web'" in err
    assert "remedy: use `local`, `vm:NAME`" in err


# -- cancel ---------------------------------------------------------------------------------------------

def test_cancel_then_nothing_left(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _seed(state_dir)
    assert main(["reboot", "cancel", "--target", "vm:web"]) == 0
    assert f"reboot #{record.id} of vm:web cancelled" in _flat(capsys.readouterr().err)
    assert main(["reboot", "cancel", "--target", "vm:web"]) == 13
    err = _flat(capsys.readouterr().err)
    assert "error: nothing pending for vm:web" in err
    assert "remedy: see `vmrepair reboot status`" in err
    assert main(["reboot", "cancel", "--target", "vm:web", "--json"]) == 13
    assert _json(capsys.readouterr().out) == {"error": "RebootError", "message": "nothing pending for vm:web",
                                              "remedy": "see `vmrepair reboot status`"}


def test_cancel_refused_while_another_vmrepair_holds_the_lock(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(state_dir)
    other = StateLock(state_dir / "vmrepair.lock")
    other.acquire("vmrepair run")
    try:
        assert main(["reboot", "cancel", "--target", "vm:web"]) == 6
    finally:
        other.release()
    assert "another vmrepair process holds" in _flat(capsys.readouterr().err)
    assert main(["reboot", "status", "--json"]) == 0
    assert _json(capsys.readouterr().out)["reboots"][0]["state"] == "waiting_operator"


# -- schedule -------------------------------------------------------------------------------------------

def test_schedule_hh_mm_is_the_next_occurrence(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(state_dir)
    before = dt.datetime.now(dt.UTC)
    assert main(["reboot", "schedule", "23:59", "--target", "vm:web", "--json"]) == 0
    shown = _json(capsys.readouterr().out)["reboot"]
    at = dt.datetime.fromisoformat(shown["not_before"])
    assert shown["state"] == "scheduled"
    assert (at.hour, at.minute) == (23, 59)   # reboot.timezone is UTC in this config
    assert before < at <= before + dt.timedelta(days=1)


def test_schedule_iso_for_people(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _seed(state_dir)
    assert main(["reboot", "schedule", "2999-01-01T03:30+00:00", "--target", "vm:web"]) == 0
    assert (f"reboot #{record.id} of vm:web moved: at 2999-01-01T03:30:00Z (Tue 03:30 UTC)"
            in _flat(capsys.readouterr().err))


@pytest.mark.parametrize(("at", "message"), [
    ("2000-01-01T00:00",
     "error: '2000-01-01T00:00' is in the past (2000-01-01T00:00:00Z (Sat 00:00 UTC); now is"),
    ("soon", "error: cannot read 'soon' as a time remedy: use HH:MM (its next occurrence"),
])
def test_schedule_refuses_bad_times(state_dir: Path, capsys: pytest.CaptureFixture[str], at: str,
                                    message: str) -> None:
    _seed(state_dir)
    assert main(["reboot", "schedule", at, "--target", "vm:web"]) == 2
    assert message in _flat(capsys.readouterr().err)


def test_schedule_refuses_when_nothing_is_pending(state_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reboot", "schedule", "03:30", "--target", "vm:ghost"]) == 13
    assert "error: nothing pending for vm:ghost" in _flat(capsys.readouterr().err)


# -- now ------------------------------------------------------------------------------------------------

def test_now_approves_then_runs_the_executor_under_the_lock(
    state_dir: Path, capsys: pytest.CaptureFixture[str], executor: FakeExecutor
) -> None:
    record = _seed(state_dir)
    executor.outcomes = [FakeOutcome("tx-1", "committed", "verified after the reboot")]
    assert main(["reboot", "now", "--target", "vm:web", "--json"]) == 0
    data = _json(capsys.readouterr().out)
    assert (data["approved"]["id"], data["approved"]["state"]) == (record.id, "scheduled")
    assert data["outcomes"] == [
        {"txn": "tx-1", "status": "committed", "message": "verified after the reboot"}]
    assert executor.calls == ["vm:web"]
    assert executor.lock_was_held == [True]


def test_now_exits_1_when_the_fix_was_not_verified(
    state_dir: Path, capsys: pytest.CaptureFixture[str], executor: FakeExecutor
) -> None:
    _seed(state_dir)
    executor.outcomes = [FakeOutcome("tx-1", "rolled_back", "verification after the reboot failed")]
    assert main(["reboot", "now", "--target", "vm:web"]) == 1
    err = _flat(capsys.readouterr().err)
    assert "approved reboot #1 of vm:web" in err
    assert "txn: tx-1, status: rolled_back, message: verification after the reboot failed" in err


def test_now_when_the_executor_did_nothing(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(state_dir)
    assert main(["reboot", "now", "--target", "vm:web"]) == 0
    assert "nothing was rebooted" in _flat(capsys.readouterr().err)


def test_now_refuses_when_nothing_is_pending(
    state_dir: Path, capsys: pytest.CaptureFixture[str], executor: FakeExecutor
) -> None:
    assert main(["reboot", "now", "--target", "vm:ghost"]) == 13
    err = _flat(capsys.readouterr().err)
    assert "error: nothing pending for vm:ghost" in err
    assert "remedy: see `vmrepair reboot status`" in err
    assert executor.calls == []


def test_now_needs_a_target(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["reboot", "now"])
    assert caught.value.code == 2
    assert "the following arguments are required: --target" in capsys.readouterr().err
