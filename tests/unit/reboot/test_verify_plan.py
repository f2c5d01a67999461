"""The verification plan carries the components its probes were named on."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.components.config import build_watch_config
from orchestrator.errors import StateError
from orchestrator.model import Component
from orchestrator.reboot.verify import VerifyPlan, load_plan, record_plan
from orchestrator.state.db import open_state
from orchestrator.state.transactions import TransactionStore

REDIS = Component("redis-server", units=("redis-server.service",), ports=(6379,), origin="discovered")


def store(tmp_path: Path) -> tuple[TransactionStore, str]:
    txns = TransactionStore(open_state(tmp_path / "state" / "state.db"))
    txn = txns.create(package_id="p", package_dir="/p", target="vm:x", component="redis-server",
                      backup_dir="/b", ops_total=1, reboot_required=True, strategy="s")
    return txns, txn.id


def test_components_round_trip_and_replace_the_configured_watch(tmp_path: Path) -> None:
    txns, txn_id = store(tmp_path)
    record_plan(txns, txn_id, VerifyPlan(("unit:redis-server.service",), None, "b", (REDIS,)))
    plan = load_plan(txns, txn_id)
    assert plan.components == (REDIS,)
    watch = plan.watch(build_watch_config(None))
    assert watch.resolved and watch.components == (REDIS,)


def test_a_plan_of_an_older_release_uses_the_configured_watch(tmp_path: Path) -> None:
    txns, txn_id = store(tmp_path)
    txns.step(txn_id, "verify_plan", probes=["config:nginx"], snapshot=None, boot_id=None)
    configured = build_watch_config(None)
    assert load_plan(txns, txn_id).watch(configured) is configured


def test_a_damaged_component_record_makes_the_plan_unusable(tmp_path: Path) -> None:
    txns, txn_id = store(tmp_path)
    txns.step(txn_id, "verify_plan", probes=["x"], snapshot=None, boot_id=None,
              components=[{"name": "../evil"}])
    with pytest.raises(StateError, match="verification plan"):
        load_plan(txns, txn_id)
