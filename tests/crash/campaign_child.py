"""One step of the randomized crash campaign, in a process of its own so it can die like a power cut.

Run as ``python -m tests.crash.campaign_child SPEC_JSON``. SPEC: ``action`` ("apply" | "recover"),
``mode`` and ``crash_at`` (where to die, see below), ``counter`` (the crash-point count lives in this
file, so a parent can tell how far a run got), ``state_db``, ``agent_dir``; for "apply" also
``backup_dir``, ``package_dir``, ``validate`` (false: the fix fails its validation and is rolled
back, so a crash lands in the rollback) and ``validated_sha256``; for "recover" ``config``.

Modes: ``none``; ``journal-before`` / ``journal-after`` (just before / after the Nth journal step is
committed); ``agent`` (before the Nth fsync/rename/unlink/chmod/chown... inside the agent, killing this
process too); ``orchestrator`` (before the Nth fsync/rename/replace/unlink in this process itself: the
backup and the package reads happen here).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.apply.recovery import recover_on_start
from orchestrator.config.settings import load_settings
from orchestrator.fixpkg import FixPackage
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from tests.crash.child import CrashingLocal

#: The orchestrator-side calls that order a crash-safe write (atomic_write of the backup, its fsyncs).
ORCHESTRATOR_CALLS = ("fsync", "rename", "replace", "unlink")


def die() -> None:
    """SIGKILL ourselves: no finally block, no atexit, no flush, as in a power cut of this process."""
    os.kill(os.getpid(), signal.SIGKILL)


def count(counter: str) -> int:
    """Add one crash point to ``counter``; return how many there have been."""
    with Path(counter).open("a+b") as handle:
        handle.write(b".")
        handle.flush()
        return handle.tell()


def install_journal_crash(mode: str, crash_at: int, counter: str) -> None:
    real = TransactionStore.step

    def step(self: TransactionStore, *args: Any, **kwargs: Any) -> None:
        point = count(counter)
        if point == crash_at and mode == "journal-before":
            die()
        real(self, *args, **kwargs)
        if point == crash_at and mode == "journal-after":
            die()

    TransactionStore.step = step  # type: ignore[method-assign]


def install_orchestrator_crash(crash_at: int, counter: str) -> None:
    def wrap(name: str) -> None:
        real: Callable[..., Any] = getattr(os, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if count(counter) == crash_at:
                die()
            return real(*args, **kwargs)

        setattr(os, name, counted)

    for name in ORCHESTRATOR_CALLS:
        wrap(name)


def apply(spec: dict[str, Any], transport: CrashingLocal) -> int:
    agent = RemoteAgent(transport, remote_dir=spec["agent_dir"], python="python3")
    package = FixPackage.load(Path(spec["package_dir"]))
    store = TransactionStore(open_state(Path(spec["state_db"])))
    txn = store.create(package_id=package.id, package_dir=spec["package_dir"], target="local",
                       component="app", backup_dir=spec["backup_dir"], ops_total=len(package.operations))
    record_plan(store, txn.id, VerifyPlan(()))   # as the pipeline does, before the first change
    is_valid: bool = spec["validate"]
    result = apply_package(package, agent, transport, backup_dir=Path(spec["backup_dir"]),
                           journal=Journal(store, txn, package.operations), validate=lambda: is_valid,
                           validated_sha256=spec["validated_sha256"])
    print(json.dumps(result.as_dict()))
    return 0


def recover(spec: dict[str, Any], transport: CrashingLocal) -> int:
    app = App(load_settings({"VMREPAIR_CONFIG": spec["config"]}))
    try:
        report = recover_on_start(
            app, connect=lambda target: transport,
            agent_for=lambda t: RemoteAgent(t, remote_dir=spec["agent_dir"], python="python3"))
    finally:
        app.close()
    print(json.dumps(report.as_dict()))
    return 0


def main() -> int:
    spec = json.loads(sys.argv[1])
    mode, crash_at, counter = spec["mode"], int(spec["crash_at"]), spec["counter"]
    if mode.startswith("journal"):
        install_journal_crash(mode, crash_at, counter)
    elif mode == "orchestrator":
        install_orchestrator_crash(crash_at, counter)
    # The agent counts its calls even when it is not the one to die: keep them out of this count.
    transport = CrashingLocal(crash_at if mode == "agent" else 0,
                              counter if mode == "agent" else counter + ".agent")
    return apply(spec, transport) if spec["action"] == "apply" else recover(spec, transport)


if __name__ == "__main__":
    sys.exit(main())
