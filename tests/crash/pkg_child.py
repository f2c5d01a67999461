"""One apply (or recovery) of a fix package with package operations, against the fake dpkg of
:mod:`.disk_dpkg`, crashing where it is told to.

Run as ``python -m tests.crash.pkg_child SPEC_JSON``: the spec of :mod:`tests.crash.harness` plus
``dpkg_state`` (the model's JSON file). Modes: those of :mod:`tests.crash.child` and ``dpkg``: die
(SIGKILL) at the Nth package crash point (see :mod:`.disk_dpkg`). Counts go to ``counter`` (journal),
``counter.agent``, ``counter.dpkg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.crash.disk_dpkg import FakeDpkgLocal
from tests.crash.harness import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv, lambda spec, crash: FakeDpkgLocal(
        Path(spec["dpkg_state"]), crash_at=crash.at_in("dpkg"), counter=crash.counter + ".dpkg",
        agent_crash_at=crash.at_in("agent"), agent_counter=crash.counter + ".agent")))
