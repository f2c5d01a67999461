"""One apply of a fix package with unit-file state operations, against the fake systemctl of
:mod:`.disk_systemctl`, crashing where it is told to.

Run as ``python -m tests.crash.unit_child SPEC_JSON``. SPEC: as :mod:`tests.crash.child` (state_db,
backup_dir, package_dir, agent_dir, mode, crash_at, counter) plus ``systemctl_state`` (the model's JSON
file) and ``validates`` (false: validation fails, so the apply rolls back). Modes: those of
:mod:`tests.crash.child` and ``systemctl``: die (SIGKILL) at the Nth systemctl crash point (see
:mod:`.disk_systemctl`). Counts go to ``counter`` (journal), ``counter.agent``, ``counter.systemctl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from orchestrator.agent.client import RemoteAgent
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.fixpkg import FixPackage
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from tests.crash.child import install_journal_crash
from tests.crash.disk_systemctl import FakeSystemctlLocal


def main() -> int:
    spec = json.loads(sys.argv[1])
    mode, crash_at, counter = spec["mode"], int(spec["crash_at"]), spec["counter"]
    if mode.startswith("journal"):
        install_journal_crash(mode, crash_at, counter)
    transport = FakeSystemctlLocal(Path(spec["systemctl_state"]),
                                   crash_at=crash_at if mode == "systemctl" else 0,
                                   counter=counter + ".systemctl",
                                   agent_crash_at=crash_at if mode == "agent" else 0,
                                   agent_counter=counter + ".agent")
    agent = RemoteAgent(transport, remote_dir=spec["agent_dir"], python="python3")
    package = FixPackage.load(Path(spec["package_dir"]))
    store = TransactionStore(open_state(Path(spec["state_db"])))
    txn = store.create(package_id=package.id, package_dir=spec["package_dir"], target="local",
                       component="app", backup_dir=spec["backup_dir"], ops_total=len(package.operations))
    record_plan(store, txn.id, VerifyPlan(()))   # as the pipeline does, before the first change
    validates = bool(spec["validates"])
    result = apply_package(package, agent, transport, backup_dir=Path(spec["backup_dir"]),
                           journal=Journal(store, txn, package.operations), validate=lambda: validates)
    print(json.dumps(result.as_dict()))
    return 0 if result.status == "applied" else 1


if __name__ == "__main__":
    sys.exit(main())
