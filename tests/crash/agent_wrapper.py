"""Runs the real agent script, dying like a power cut just before its Nth crash-relevant call.

Usage: python -B agent_wrapper.py AGENT_SCRIPT CRASH_AT COUNTER_FILE [AGENT_ARG...]

Every call of the functions in CALLS (across every agent process of one apply: the count lives in
COUNTER_FILE) is counted; at call number CRASH_AT the orchestrator process that started the agent is
SIGKILLed, then the agent exits at once, so neither of them can clean up. CRASH_AT 0 never crashes
(counting run).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path

CALLS = ("fsync", "rename", "replace", "unlink", "link", "fchmod", "fchown", "ftruncate",
         "symlink", "mkdir", "rmdir", "chown")


def main() -> None:
    script, crash_at, counter = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def counted(*args: object, **kwargs: object) -> object:
            with Path(counter).open("a+b") as handle:
                handle.write(b".")
                handle.flush()
                count = handle.tell()
            if count == crash_at:
                os.kill(os.getppid(), signal.SIGKILL)
                os._exit(137)
            return real(*args, **kwargs)

        setattr(os, name, counted)

    for name in CALLS:
        wrap(name)
    sys.argv = [script, *sys.argv[4:]]   # the agent's own arguments (--serve)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
