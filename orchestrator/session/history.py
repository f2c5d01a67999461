"""What earlier sessions say about a target, read cheaply at the start of a run."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import StateError
from orchestrator.session.jsonfile import read_json_file

#: Sessions looked at (newest first) before giving up: this is a hint, not a search.
MAX_SESSIONS = 50
#: A session.json larger than this is not parsed (a runaway or hostile file).
MAX_META_BYTES = 1024 * 1024


def _read_meta(path: Path) -> object:
    """session.json as JSON, or None: never blocks on a FIFO, never reads a huge file."""
    try:
        return read_json_file(path, max_bytes=MAX_META_BYTES)
    except StateError:
        return None


def last_run_escalated(sessions_dir: Path, target: str) -> bool:
    """Whether the newest finished run on ``target`` needed a troubleshooting VM (an issue that was
    not fixed in place): then the next run starts one before detection ends."""
    try:
        entries = sorted((e for e in sessions_dir.iterdir() if e.is_dir()), reverse=True)[:MAX_SESSIONS]
    except OSError:
        return False
    for entry in entries:
        meta = _read_meta(entry / "session.json")
        if not isinstance(meta, dict) or meta.get("target") != target or meta.get("status") == "running":
            continue
        components = meta.get("components")
        if not isinstance(components, list):
            return False
        return any(isinstance(c, dict) and not c.get("in_place") for c in components)
    return False


def last_layer(sessions_dir: Path, target: str) -> str:
    """The host layer the newest finished run on ``target`` used (its key), or "": the next run's
    troubleshooting VM starts on it, instead of on the template and then moving (the layer is planned
    again, and a different plan still moves)."""
    try:
        entries = sorted((e for e in sessions_dir.iterdir() if e.is_dir()), reverse=True)[:MAX_SESSIONS]
    except OSError:
        return ""
    for entry in entries:
        meta = _read_meta(entry / "session.json")
        if not isinstance(meta, dict) or meta.get("target") != target or meta.get("status") == "running":
            continue
        layer = meta.get("layer")
        return layer if isinstance(layer, str) else ""
    return ""
