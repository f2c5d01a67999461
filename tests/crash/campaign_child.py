"""One step of the randomized crash campaign, in a process of its own so it can die like a power cut.

Run as ``python -m tests.crash.campaign_child SPEC_JSON`` (the spec of :mod:`tests.crash.harness`;
``validates`` false lands a crash in the rollback). Unlike the other children it exits 0 whenever it
was not killed (a rolled-back apply included), and every mode counts in ``counter`` itself.

Modes: ``none``; ``journal-before`` / ``journal-after`` (just before / after the Nth journal step is
committed); ``agent`` (before the Nth fsync/rename/unlink/chmod/chown... inside the agent, killing this
process too); ``orchestrator`` (before the Nth fsync/rename/replace/unlink in this process itself: the
backup and the package reads happen here).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.crash.harness import (
    CrashingLocal,
    apply_from_spec,
    count,
    die,
    install_journal_crash,
    recover_with,
)

#: The orchestrator-side calls that order a crash-safe write (atomic_write of the backup, its fsyncs).
ORCHESTRATOR_CALLS = ("fsync", "rename", "replace", "unlink")


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
    if spec["action"] == "apply":
        apply_from_spec(spec, transport)
    else:
        print(json.dumps(recover_with(Path(spec["config"]), spec["agent_dir"], lambda: transport).as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
