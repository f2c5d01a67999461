"""A budget for repeated log lines and audit records about the same kind of event.

A local user the API refuses can connect thousands of times a second; logging and auditing each
refusal would let them fill the journal and the disk. :class:`LogBudget` lets ``burst`` events
through per ``window_s`` and counts the rest, so the next event let through can say how many were
left out: nothing is hidden, only summarized.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LogBudget:
    def __init__(self, *, burst: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._used = 0
        self._suppressed = 0

    def admit(self) -> int | None:
        """None when this event must not be logged; otherwise how many events were left out since
        the last one admitted (0 mostly)."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self._window_s:
                self._window_start, self._used = now, 0
            if self._used >= self._burst:
                self._suppressed += 1
                return None
            self._used += 1
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed
