"""A recovery cut off between its last journal step and its audit entry is audited at the next start,
once."""

from __future__ import annotations

import json
from collections.abc import Callable

from orchestrator.app import App
from orchestrator.apply.recovery import AUDITED, recover_on_start
from orchestrator.config.settings import Settings
from orchestrator.state.transactions import TransactionStore


def _audit_lines(app: App) -> list[dict[str, object]]:
    path = app.settings.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_unaudited_recovery_is_audited_late_and_only_once(make_settings: Callable[..., Settings]) -> None:
    app = App(make_settings())
    store = TransactionStore(app.state)
    txn = store.create(package_id="p", package_dir="/p", target="vm:x", component="nginx",
                       backup_dir="/nonexistent", ops_total=1, reboot_required=False, strategy="s")
    # What a recovery killed after this step leaves: the journal says aborted, the audit says nothing.
    store.step(txn.id, "recovered_aborted", state="aborted", error="interrupted before the first change")
    report = recover_on_start(app)
    assert report.is_clean
    entries = [e for e in _audit_lines(app) if e.get("event") == "recovery"]
    assert len(entries) == 1
    details = entries[0]["details"]
    assert isinstance(details, dict) and (details["txn"], details["action"]) == (txn.id, "journal_recovery")
    assert "audited late" in json.dumps(entries[0])
    assert [s["step"] for s in store.steps(txn.id)][-1] == AUDITED
    recover_on_start(app)
    assert len([e for e in _audit_lines(app) if e.get("event") == "recovery"]) == 1


def test_a_recovery_audits_each_transaction_as_it_ends(make_settings: Callable[..., Settings]) -> None:
    app = App(make_settings())
    store = TransactionStore(app.state)
    txn = store.create(package_id="p", package_dir="/p", target="vm:x", component="nginx",
                       backup_dir="/nonexistent", ops_total=1, reboot_required=False, strategy="s")
    report = recover_on_start(app)   # state intent: aborted without touching the target
    assert [r["to"] for r in report.recovered] == ["aborted"]
    assert [s["step"] for s in store.steps(txn.id)][-2:] == ["recovered_aborted", AUDITED]
    assert len([e for e in _audit_lines(app) if e.get("event") == "recovery"]) == 1
