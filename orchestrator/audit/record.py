"""The audit record format: one JSON object per line, hash-chained.

Each line is, with exactly these keys in exactly this order::

    {"seq":7,"timestamp":"2026-11-21T10:15:00Z","event":"recovery","component":"nginx",
     "status":"ok","details":{...},"prev":"<sha256 hex of line 6's bytes, without its newline>"}

``seq`` counts from 1 without gaps and ``prev`` of the first record is :data:`GENESIS_HASH`. Lines are
encoded with ``ensure_ascii=True``: every newline, NUL, control or non-ASCII character of a string
(however hostile the guest that produced it) becomes a JSON escape, so a string can never split a
line or forge a record. Strings are capped at :data:`MAX_STRING` characters and a whole line at
:data:`MAX_RECORD` bytes, both marked as truncated.

The writer is :class:`orchestrator.audit.log.AuditLog`; the checker is
:class:`orchestrator.audit.chain.ChainChecker`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RECORD_KEYS = ("seq", "timestamp", "event", "component", "status", "details", "prev")
GENESIS_HASH = "0" * 64
#: Cap of one string inside ``details`` (characters, before JSON escaping).
MAX_STRING = 4096
#: Cap of ``event``, ``component`` and ``status``: names, not data.
MAX_NAME = 256
#: Cap of one encoded line; past it ``details`` is replaced by a note naming what was there.
MAX_RECORD = 64 * 1024
#: Containers (dicts, lists) keep this many items; the rest is counted.
MAX_ITEMS = 256
MAX_DEPTH = 8
#: Ints beyond this are stored as strings (Python refuses to print ints of more than 4300 digits).
MAX_SAFE_INT = 2**63
#: Event of the records that say where the chain broke (written by the log and by `log repair`).
CHAIN_BREAK_EVENT = "chain_break"
#: Component of the records the audit machinery writes about itself.
AUDIT_COMPONENT = "audit"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class AuditRecord:
    """A parsed, well-formed record; ``hash`` is the sha256 of its line (the next record's ``prev``)."""

    seq: int
    prev: str
    event: str
    component: str
    details: dict[str, Any]
    hash: str


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def cap_string(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated: {len(text)} characters]"


def sanitize(value: object, depth: int = 0) -> object:  # noqa: PLR0911 - one return per JSON type
    """A JSON-able copy of ``value`` with every string capped and every container bounded."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < MAX_SAFE_INT else cap_string(hex(value), 64)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN/Infinity are not JSON
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return cap_string(value)
    if depth >= MAX_DEPTH:
        return f"[nested deeper than {MAX_DEPTH} levels]"
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == MAX_ITEMS:
                out["[truncated]"] = f"{len(value) - MAX_ITEMS} more keys"
                break
            out[cap_string(str(key), MAX_NAME)] = sanitize(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [sanitize(item, depth + 1) for item in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"[truncated: {len(value) - MAX_ITEMS} more items]")
        return items
    return cap_string(str(value))  # Path, enums, exceptions: their text


def encode_record(
    *, seq: int, prev: str, timestamp: str, event: str, component: str, status: str,
    details: Mapping[str, Any] | None,
) -> bytes:
    """One record line, without its newline; never longer than :data:`MAX_RECORD` bytes."""
    record = {"seq": seq, "timestamp": timestamp, "event": cap_string(event, MAX_NAME),
              "component": cap_string(component, MAX_NAME), "status": cap_string(status, MAX_NAME),
              "details": sanitize(dict(details or {})), "prev": prev}
    line = _dumps(record)
    if len(line) > MAX_RECORD:
        keys = [cap_string(str(key), 64) for key in list((details or {}).keys())[:20]]
        record["details"] = {"truncated": f"record of {len(line)} bytes exceeded {MAX_RECORD}",
                             "keys": keys}
        line = _dumps(record)
    return line


def _dumps(record: dict[str, object]) -> bytes:
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def as_record(value: object, line: bytes) -> AuditRecord | str:  # noqa: PLR0911 - one per rule
    """The record ``value`` (parsed from ``line``) is, or why it is not one."""
    if not isinstance(value, dict):
        return "not a JSON object"
    if tuple(value) != RECORD_KEYS:
        return f"keys are not {', '.join(RECORD_KEYS)} in this order"
    seq, prev, details = value["seq"], value["prev"], value["details"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return "seq is not a positive integer"
    if not isinstance(prev, str) or len(prev) != 64 or not _HEX.issuperset(prev):
        return "prev is not a sha256 hex digest"
    if not all(isinstance(value[key], str) for key in ("timestamp", "event", "component", "status")):
        return "timestamp, event, component or status is not a string"
    if not isinstance(details, dict):
        return "details is not a JSON object"
    return AuditRecord(seq, prev, value["event"], value["component"], details, line_hash(line))


def parse_record(line: bytes) -> AuditRecord | None:
    """The record on ``line`` (without newline), or None when the line is not a well-formed record."""
    try:
        # Decoded first: json.loads(bytes) would guess UTF-16/32 from leading NUL bytes.
        value = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    record = as_record(value, line)
    return record if isinstance(record, AuditRecord) else None
