"""`vmrepair fixes list|show|rollback|recover` and the state lock every mutating command takes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore


def _txn(state: Path, **kwargs: object) -> str:
    store = TransactionStore(open_state(state / "state.db"))
    txn = store.create(package_id="pkg-1", package_dir="/p", target="vm:patient", component="nginx",
                       backup_dir=str(state / "backups" / "x"), ops_total=2, strategy="nginx-restart")
    for step, new_state in kwargs.items():
        store.step(txn.id, step, state=str(new_state))
    return txn.id


def test_list_and_show_as_json(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txn_id = _txn(cli_env, committed="committed")
    assert main(["fixes", "list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["fixes"]
    assert (row["id"], row["state"], row["strategy"]) == (txn_id, "committed", "nginx-restart")
    assert main(["fixes", "show", txn_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in shown["steps"]] == ["intent", "committed"]


def test_show_refuses_a_malformed_id(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixes", "show", "../../etc"]) == 2
    assert "invalid transaction id '../../etc'" in capsys.readouterr().err


def test_rollback_refuses_what_has_nothing_to_roll_back(cli_env: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    txn_id = _txn(cli_env, aborted="aborted")
    assert main(["fixes", "rollback", txn_id]) == 8
    assert f"transaction {txn_id} is aborted: nothing to roll back" in capsys.readouterr().err


def test_recover_aborts_an_apply_interrupted_before_its_first_change(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    txn_id = _txn(cli_env, backup_verified="backed_up")
    assert main(["fixes", "recover", "--json"]) == 0
    err = capsys.readouterr().err
    assert f"recovered interrupted fix {txn_id} on vm:patient: backed_up -> aborted" in err
    assert TransactionStore(open_state(cli_env / "state.db")).get(txn_id).state == "aborted"


def test_a_corrupt_store_makes_vmrepair_refuse_to_act(cli_env: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.mkdir(parents=True, exist_ok=True)
    (cli_env / "state.db").write_bytes(b"garbage" * 1000)
    assert main(["fixes", "recover"]) == 6
    err = " ".join(capsys.readouterr().err.split())   # rich wraps long lines
    assert "is corrupt" in err and "refusing to act" in err and "PRAGMA integrity_check" in err


def test_a_second_process_is_told_who_holds_the_lock(cli_env: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from orchestrator.state import StateLock; StateLock(Path(sys.argv[1])).acquire('vmrepair run'); "
         "print('held', flush=True); time.sleep(60)", str(cli_env / "vmrepair.lock")],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert main(["fixes", "recover"]) == 6
        err = "".join(capsys.readouterr().err.split())   # rich wraps long lines, even inside a path
        expected = f"another vmrepair process holds {cli_env / 'vmrepair.lock'}: pid {holder.pid}"
        assert "".join(expected.split()) in err
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.parametrize("argv", [["fixes", "list"], ["fixes", "list", "--json"], ["reboot", "status"],
                                  ["fixes", "show", "tx-0123456789ab"]])
def test_read_only_commands_create_and_chmod_nothing(cli_env: Path, argv: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13, item 2: `fixes list` on an existing 0755 state dir chmodded it to 0700."""
    cli_env.mkdir(mode=0o755)
    cli_env.chmod(0o755)
    main(argv)
    assert "Traceback" not in capsys.readouterr().err
    assert stat.S_IMODE(cli_env.stat().st_mode) == 0o755
    assert list(cli_env.iterdir()) == []


def test_read_only_commands_leave_a_missing_state_dir_missing(cli_env: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixes", "list"]) == 0
    assert "no fix transactions" in capsys.readouterr().err
    assert not cli_env.exists()


def test_forget_closes_an_unfinished_transaction_whose_vm_is_gone(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Applied on vm:patient, whose VM was destroyed: recovery fails on every start, nothing ended it.
    txn_id = _txn(cli_env, backup_verified="backed_up", applying="applying", applied="applied")
    assert main(["fixes", "recover", "--json"]) == 1
    capsys.readouterr()
    assert main(["fixes", "forget", txn_id, "--reason", "patient  destroyed\nafter the test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["txn"], out["state"], out["was"]) == (txn_id, "forgotten", "applied")
    store = TransactionStore(open_state(cli_env / "state.db"))
    txn = store.get(txn_id)
    assert txn.state == "forgotten"
    assert txn.error == "forgotten by the operator: patient destroyed after the test"
    assert store.steps(txn_id)[-1]["step"] == "forgotten"
    audit = [json.loads(line) for line in (cli_env.parent / "audit.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "fix_forgotten" and e.get("details", {}).get("txn") == txn_id for e in audit)
    assert main(["fixes", "recover"]) == 0               # nothing left to retry
    assert main(["fixes", "rollback", txn_id]) == 8      # and nothing to roll back on a gone target


@pytest.mark.parametrize("state", ["committed", "rolled_back", "pending_reboot"])
def test_forget_refuses_a_transaction_that_is_not_unfinished(
        cli_env: Path, capsys: pytest.CaptureFixture[str], state: str) -> None:
    txn_id = _txn(cli_env, **{state: state})
    assert main(["fixes", "forget", txn_id, "--reason", "gone"]) == 8
    assert f"transaction {txn_id} is {state}: only an unfinished one" in capsys.readouterr().err


def test_forget_refuses_while_the_vm_exists_or_without_a_reason(
        cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli import fixes
    txn_id = _txn(cli_env, backup_verified="backed_up", applying="applying")
    assert main(["fixes", "forget", txn_id, "--reason", "  "]) == 2
    assert "--reason is empty" in capsys.readouterr().err
    monkeypatch.setattr(fixes, "_vm_exists", lambda app, name: name == "patient")
    assert main(["fixes", "forget", txn_id, "--reason", "gone"]) == 8
    err = " ".join(capsys.readouterr().err.split())
    assert "the VM 'patient' of vm:patient still exists" in err and "vmrepair fixes recover" in err
    assert TransactionStore(open_state(cli_env / "state.db")).get(txn_id).state == "applying"
