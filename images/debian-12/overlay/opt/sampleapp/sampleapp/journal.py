"""The interaction log: an append-only JSON Lines file, one JSON object per request.

Every non-empty line must be a JSON object. ``verify`` checks the whole file before the
service starts; ``append`` adds one line with a single ``write`` on an ``O_APPEND``
descriptor, so concurrent requests never interleave inside a line.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FILE_MODE = 0o640


class CorruptLogError(Exception):
    """A line of the interaction log is not a JSON object."""

    def __init__(self, path: Path, lineno: int, problem: str) -> None:
        self.path = path
        self.lineno = lineno
        self.problem = problem
        super().__init__(f"{path} line {lineno} {problem}")


def _check_line(raw: bytes) -> str | None:
    """Return what is wrong with one non-empty line, or None if it is a JSON object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not valid UTF-8 (byte {exc.start + 1} of the line)"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
    if not isinstance(value, dict):
        return f"is not a JSON object (found {type(value).__name__})"
    return None


class Journal:
    """The interaction log at ``path``; safe to share between request threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries = 0

    @property
    def entries(self) -> int:
        """Lines in the log: those verified at startup plus those appended since."""
        with self._lock:
            return self._entries

    def verify(self) -> int:
        """Check every line; return how many entries the log holds.

        A missing or empty file holds 0 entries. Blank lines are ignored, and so is a
        missing newline after the last line. Raises CorruptLogError naming the first bad
        line, OSError when the file cannot be read.
        """
        entries = 0
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            entries = 0
        else:
            with handle:
                for lineno, raw in enumerate(handle, start=1):
                    line = raw.strip()
                    if not line:
                        continue
                    problem = _check_line(line)
                    if problem is not None:
                        raise CorruptLogError(self.path, lineno, problem)
                    entries += 1
        with self._lock:
            self._entries = entries
        return entries

    def append(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one line. Raises OSError (disk full, permissions...)."""
        line = json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n"
        data = line.encode("utf-8")
        # Read-write only so the last byte can be checked with pread; writes still append.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        with self._lock:
            # Opened per append so a rotated or deleted log is simply recreated.
            fd = os.open(self.path, flags, _FILE_MODE)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # The last line was left without its newline: never glue onto it.
                    data = b"\n" + data
                written = os.write(fd, data)
                # A regular file only takes less than everything when it is out of
                # space; finishing the line (or raising ENOSPC) beats leaving it cut.
                while written < len(data):
                    written += os.write(fd, data[written:])
            finally:
                os.close(fd)
            self._entries += 1
