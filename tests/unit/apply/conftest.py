"""Fixtures for apply tests: a target, the VM it was captured into, and a package built from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.apply import ApplyResult, apply_package
from orchestrator.apply.journal import Journal
from orchestrator.fixpkg import FixPackage
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore, TxnRecord
from tests.unit.apply.fakes import FakeAgent, FakeFile
from tests.unit.fixpkg.scenario import CONF, KEY, OLD, UNIT_FILE, build, make_target, make_vm

NEW_CONF = b"listen 80\nworkers 4\n"
NEW_FILE = "/etc/app/conf.d/new.conf"

#: What the repair layer recorded in the VM.
RESTART_APP = [{"op": "unit", "unit": "app.service", "action": "restart"}]


@pytest.fixture
def target() -> FakeAgent:
    # conf.d exists: these tests are about files; a new directory's make_dir has tests of its own.
    host = make_target()
    host.mkdir("/etc/app/conf.d")
    return host


@pytest.fixture
def make_package(target: FakeAgent) -> Callable[..., FixPackage]:
    """Build a package from ``target``: edit app.conf, add a file, remove one, chmod the key, extend
    the unit file, and replay ``replay`` (default: restart app.service)."""

    def factory(replay: list[dict[str, Any]] | None = None, *, files: bool = True) -> FixPackage:
        vm = make_vm(target)
        if files:
            vm.files[CONF].data = NEW_CONF
            vm.files[NEW_FILE] = FakeFile(b"extra = 1\n", 0o640, 104, 104)
            del vm.files[OLD]
            vm.files[KEY].mode = 0o600
            vm.files[UNIT_FILE].data += b"Restart=on-failure\n"
        return build(target, vm, RESTART_APP if replay is None else replay)

    return factory


def journal_for(pkg: FixPackage, backup_dir: Path) -> Journal:
    """A transaction in state ``intent`` in a state store beside ``backup_dir`` (as the pipeline does)."""
    store = TransactionStore(open_state(backup_dir.parent / "state.db"))
    txn = store.create(package_id=pkg.id, package_dir="/pkg", target="ssh://target", component="app",
                       backup_dir=str(backup_dir), ops_total=len(pkg.operations))
    return Journal(store, txn, pkg.operations)


def apply_journalled(pkg: FixPackage, agent: Any, transport: Any, *, backup_dir: Path,
                     **kwargs: Any) -> ApplyResult:
    return apply_package(pkg, agent, transport, backup_dir=backup_dir,
                         journal=journal_for(pkg, backup_dir), **kwargs)


def txn_state(backup_dir: Path, txn_id: str) -> TxnRecord:
    return TransactionStore(open_state(backup_dir.parent / "state.db")).get(txn_id)
