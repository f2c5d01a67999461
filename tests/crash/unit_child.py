"""One apply (or recovery) of a fix package with unit-file state operations, against the fake
systemctl of :mod:`.disk_systemctl`, crashing where it is told to.

Run as ``python -m tests.crash.unit_child SPEC_JSON``: the spec of :mod:`tests.crash.harness` plus
``systemctl_state`` (the model's JSON file). Modes: those of :mod:`tests.crash.child` and
``systemctl``: die (SIGKILL) at the Nth systemctl crash point (see :mod:`.disk_systemctl`). Counts go
to ``counter`` (journal), ``counter.agent``, ``counter.systemctl``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.crash.disk_systemctl import FakeSystemctlLocal
from tests.crash.harness import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv, lambda spec, crash: FakeSystemctlLocal(
        Path(spec["systemctl_state"]), crash_at=crash.at_in("systemctl"),
        counter=crash.counter + ".systemctl", agent_crash_at=crash.at_in("agent"),
        agent_counter=crash.counter + ".agent")))
