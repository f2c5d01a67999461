"""Reading the state directory's JSON files (``session.json`` and the like) without trusting them.

Anyone who can write to the state directory, a crash, or a full disk can leave something odd where a
JSON file should be. Each odd thing is refused with a reason instead of a hang or a traceback:

- a FIFO (or a device): opened with ``O_NONBLOCK`` and checked with ``fstat`` to be a regular file,
  so neither ``open`` nor ``read`` ever waits for a writer;
- a symbolic link: ``O_NOFOLLOW``; the state directory holds no links, so one is a planted file;
- a huge file: refused by its size before reading, and never more than the cap is read;
- deep nesting: counted before parsing, so :func:`json.loads` never hits the recursion limit
  (a RecursionError in a daemon thread would be a traceback at best).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError

#: session.json is a few KB; 1 MiB is generous and bounds what one API request may read.
MAX_META_BYTES = 1024 * 1024
#: Nesting deeper than this is refused; what vmrepair writes stays under 10 levels.
MAX_JSON_DEPTH = 64
META_NAME = "session.json"
#: ``status`` of a listed session whose session.json cannot be read.
UNREADABLE = "unreadable"

_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read_json_file(path: Path, *, max_bytes: int = MAX_META_BYTES) -> object:
    """The JSON value in ``path``.

    Raises:
        StateError: the message is the reason alone (callers name the file): not a regular file,
            a symbolic link, over ``max_bytes``, nested deeper than MAX_JSON_DEPTH, not valid JSON,
            or unreadable.
    """
    raw = read_regular_file(path, max_bytes)
    if _is_too_deep(raw):
        raise StateError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: belt and braces after the count
        raise StateError(f"not valid JSON ({exc})") from exc


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` when it is a regular file (not a link) of at most ``max_bytes``.

    Raises:
        StateError: the reason alone, as :func:`read_json_file`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        # Say what is there: O_NOFOLLOW fails on a link with ELOOP, open() on a socket with ENXIO.
        with contextlib.suppress(OSError):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise StateError("a symbolic link (not followed)") from exc
            _check_regular(mode)
        raise StateError(f"cannot read: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        _check_regular(info.st_mode)
        if info.st_size > max_bytes:
            raise StateError(f"{info.st_size} bytes, over the {max_bytes}-byte cap")
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            raw = handle.read(max_bytes + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise StateError(f"cannot read: {exc.strerror or exc}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > max_bytes:
        raise StateError(f"over the {max_bytes}-byte cap")
    return raw


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "an unknown kind")
        raise StateError(f"not a regular file ({kind})")


def _is_too_deep(raw: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_JSON_DEPTH (malformed input may
    miscount; then json.loads rejects it anyway)."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def read_session_meta(directory: Path) -> dict[str, Any]:
    """``directory/session.json`` as a JSON object.

    Raises:
        StateError: ``session <id>: unreadable session.json (<reason>)``.
    """
    try:
        return _read_object(directory / META_NAME)
    except StateError as exc:
        raise StateError(f"session {directory.name}: unreadable {META_NAME} ({exc.message})") from exc


def _read_object(path: Path) -> dict[str, Any]:
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise StateError("not a JSON object")
    return data


def scan_sessions(sessions_dir: Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` sessions' metadata, newest first; a session whose session.json cannot be
    read is listed too, as ``{"id", "status": "unreadable", "unreadable": reason, "summary"}``,
    so one bad session never hides the others. Only ``limit`` files are read.

    Raises:
        OSError: the sessions directory cannot be listed (it exists but is not readable).
    """
    if not sessions_dir.is_dir():
        return []
    entries = sorted((e for e in sessions_dir.iterdir() if e.is_dir()), reverse=True)
    rows: list[dict[str, Any]] = []
    for entry in entries[:limit]:
        try:
            rows.append(_read_object(entry / META_NAME))
        except StateError as exc:
            rows.append({"id": entry.name, "status": UNREADABLE, "unreadable": exc.message,
                         "summary": f"unreadable {META_NAME}: {exc.message}"})
    return rows
