"""One apply of a real fix package to files under a scratch root, crashing where it is told to.

Run as ``python -m tests.crash.child SPEC_JSON``. SPEC: state_db, backup_dir, package_dir, agent_dir,
mode ("none" | "journal-before" | "journal-after" | "agent"), crash_at, counter.

``journal-before`` kills the process just before the Nth journal step is committed (the act before it
has happened); ``journal-after`` just after (the act it announces has not). ``agent`` kills it (and the
agent) before the Nth crash-relevant system call inside the agent's file replacement.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.agent.client import RemoteAgent
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.fixpkg import FixPackage
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from orchestrator.transport.base import CommandResult
from orchestrator.transport.local import LocalTransport
from orchestrator.transport.stream import CommandStream

WRAPPER = Path(__file__).with_name("agent_wrapper.py")


class CrashingLocal(LocalTransport):
    """Runs the agent under agent_wrapper.py so it can die mid-replace."""

    def __init__(self, crash_at: int, counter: str) -> None:
        super().__init__()
        self.crash_at, self.counter = crash_at, counter

    def _wrapped(self, argv: Sequence[str]) -> list[str]:
        argv = list(argv)
        if argv[:3] == ["python3", "-I", "-B"]:
            argv = [sys.executable, "-B", str(WRAPPER), argv[3], str(self.crash_at), self.counter, *argv[4:]]
        return argv

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        return super().run(self._wrapped(argv), **kwargs)

    def open_stream(self, argv: Sequence[str]) -> CommandStream:
        # The agent runs as one --serve process per client: it must die at its Nth call too.
        return super().open_stream(self._wrapped(argv))


def install_journal_crash(mode: str, crash_at: int, counter: str) -> None:
    real = TransactionStore.step

    def step(self: TransactionStore, *args: Any, **kwargs: Any) -> None:
        with Path(counter).open("a+b") as handle:
            handle.write(b".")
            handle.flush()
            count = handle.tell()
        if count == crash_at and mode == "journal-before":
            os._exit(137)
        real(self, *args, **kwargs)
        if count == crash_at and mode == "journal-after":
            os._exit(137)

    TransactionStore.step = step  # type: ignore[method-assign]


def main() -> int:
    spec = json.loads(sys.argv[1])
    mode, crash_at, counter = spec["mode"], int(spec["crash_at"]), spec["counter"]
    if mode.startswith("journal"):
        install_journal_crash(mode, crash_at, counter)
    transport = CrashingLocal(crash_at if mode == "agent" else 0, counter + ".agent")
    agent = RemoteAgent(transport, remote_dir=spec["agent_dir"], python="python3")
    package = FixPackage.load(Path(spec["package_dir"]))
    store = TransactionStore(open_state(Path(spec["state_db"])))
    txn = store.create(package_id=package.id, package_dir=spec["package_dir"], target="local",
                       component="app", backup_dir=spec["backup_dir"], ops_total=len(package.operations))
    record_plan(store, txn.id, VerifyPlan(()))   # as the pipeline does, before the first change
    result = apply_package(package, agent, transport, backup_dir=Path(spec["backup_dir"]),
                           journal=Journal(store, txn, package.operations), validate=lambda: True)
    print(json.dumps(result.as_dict()))
    return 0 if result.status == "applied" else 1


if __name__ == "__main__":
    sys.exit(main())
