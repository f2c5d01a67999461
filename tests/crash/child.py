"""One apply of a real fix package to files under a scratch root, crashing where it is told to.

Run as ``python -m tests.crash.child SPEC_JSON`` (the spec of :mod:`tests.crash.harness`). Modes: none,
``journal-before`` (kill just before the Nth journal step is committed: the act before it has
happened), ``journal-after`` (just after: the act it announces has not), ``agent`` (kill it and the
agent before the Nth crash-relevant system call inside the agent's file replacement, counted in
``counter.agent``).
"""

from __future__ import annotations

import sys

from tests.crash.harness import CrashingLocal, child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv, lambda spec, crash:
                        CrashingLocal(crash.at_in("agent"), crash.counter + ".agent")))
