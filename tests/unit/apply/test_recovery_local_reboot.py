"""``local`` half of the reboot flow: the fix waiting for this host's reboot is verified at vmrepair's
first start after the boot (a new boot id), committed, and its reboot record closed."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.app import App
from orchestrator.apply.recovery import recover_on_start
from orchestrator.boot.host import boot_id
from orchestrator.config.settings import Settings
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state.transactions import TransactionStore

BEFORE = "0f6bb6d2-1111-4222-8333-944455556666"   # not this machine's boot


def _pending_local(app: App, *, booted_since: str) -> str:
    store = TransactionStore(app.state)
    txn = store.create(package_id="p", package_dir="/p", target="local", component="boot",
                       backup_dir="/nonexistent", ops_total=1, reboot_required=True, strategy="s")
    record_plan(store, txn.id, VerifyPlan((), None, booted_since))   # no probes: the system state only
    store.step(txn.id, "pending_reboot", state="pending_reboot")
    scheduler = scheduler_for(app)
    record = scheduler.request("local", txn_id=txn.id, reason="test", policy="automatic", notice_s=0)
    scheduler.mark(record.id, "rebooting")
    store.step(txn.id, "rebooting", boot_id=booted_since)
    return txn.id


def test_a_pending_local_fix_is_verified_after_the_boot(make_settings: Callable[..., Settings]) -> None:
    app = App(make_settings())
    txn_id = _pending_local(app, booted_since=BEFORE)
    report = recover_on_start(app)
    assert report.errors == []
    assert report.recovered == [{"txn": txn_id, "target": "local", "from": "pending_reboot",
                                 "to": "committed", "message": "verified after the reboot"}]
    assert TransactionStore(app.state).get(txn_id).state == "committed"
    assert [r.state for r in scheduler_for(app).status("local")] == ["done"]


def test_before_the_reboot_the_fix_stays_pending(make_settings: Callable[..., Settings]) -> None:
    app = App(make_settings())
    txn_id = _pending_local(app, booted_since=boot_id(app.local))   # still the same boot
    assert recover_on_start(app).is_clean
    assert TransactionStore(app.state).get(txn_id).state == "pending_reboot"
