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


def test_the_baseline_facts_round_trip_so_modes_probes_exist_after_the_boot(tmp_path: Path) -> None:
    # A target with a baseline has modes:<component> probes; they are planned from baseline_modes, so
    # a plan without them failed every verification after a boot ("no longer exists").
    txns, txn_id = store(tmp_path)
    modes = {"/etc/redis/redis.conf": ("file", 0o640, 0, 114)}
    units = {"redis-server.service": ("active", "enabled")}
    record_plan(txns, txn_id, VerifyPlan(("modes:redis-server",), None, "b", (REDIS,), units, modes))
    watch = load_plan(txns, txn_id).watch(build_watch_config(None))
    assert (dict(watch.baseline_modes), dict(watch.baseline_units)) == (modes, units)


def test_malformed_baseline_facts_in_a_plan_are_left_out(tmp_path: Path) -> None:
    txns, txn_id = store(tmp_path)
    txns.step(txn_id, "verify_plan", probes=["unit:redis-server.service"], snapshot=None, boot_id=None,
              components=[], baseline_units={"a": ["x"], "b": ["active", "enabled"]},
              baseline_modes={"/x": ["file", "644", 0, 0], "/y": ["dir", 0o755, 0, 0]})
    plan = load_plan(txns, txn_id)
    assert plan.baseline_units == {"b": ("active", "enabled")}
    assert plan.baseline_modes == {"/y": ("dir", 0o755, 0, 0)}
