"""The last detection of each target, kept so metrics survive restarts and agree between processes.

``<state>/detections/<target slug>.json``: when the detection finished, the target, and its open
issues with the time each was first seen (carried over from the previous record while the issue
stays open). Written by `vmrepair detect`, the detect stage of `vmrepair run` and the daemon's
detection job; an issue a run repaired is dropped from the record at the end of that run.

Writing is a side channel: :func:`remember_detection` and :func:`forget_issues` log a failure and
never raise, so a full disk cannot fail a detection or a repair.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import StateError
from orchestrator.fsutil import atomic_write, ensure_private_dir
from orchestrator.model import Issue, Severity
from orchestrator.session.jsonfile import read_json_file

log = logging.getLogger(__name__)

DIRECTORY = "detections"
#: A record lists at most this many issues (a detection finds a handful; this bounds a bad one).
MAX_ISSUES = 1000
_SEVERITIES = frozenset(str(s) for s in Severity)


@dataclass(frozen=True)
class OpenIssue:
    id: str
    component: str
    severity: str
    first_seen: float


@dataclass(frozen=True)
class DetectionRecord:
    target: str
    at: float
    issues: tuple[OpenIssue, ...]

    def as_json(self) -> bytes:
        data = {"target": self.target, "at": self.at,
                "issues": [vars(i) for i in self.issues[:MAX_ISSUES]]}
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def record_path(state_dir: Path, slug: str) -> Path:
    return state_dir / DIRECTORY / f"{slug}.json"


def remember_detection(state_dir: Path, slug: str, target: str, issues: Iterable[Issue], *,
                       now: float | None = None) -> None:
    """Record a finished detection of ``target``; never raises (see the module docstring)."""
    moment = time.time() if now is None else now
    path = record_path(state_dir, slug)
    try:
        previous = {i.id: i.first_seen for i in _read(path).issues} if path.exists() else {}
    except StateError:
        previous = {}  # an unreadable record is replaced: first-seen times restart from now
    record = DetectionRecord(target, moment, tuple(
        OpenIssue(i.id, i.component, str(i.severity), previous.get(i.id, moment)) for i in issues))
    _write(path, record)


def forget_issues(state_dir: Path, slug: str, ids: Collection[str]) -> None:
    """Drop ``ids`` (repaired) from the target's record, keeping when it was detected; never raises."""
    path = record_path(state_dir, slug)
    if not ids or not path.exists():
        return
    try:
        record = _read(path)
    except StateError as exc:
        log.warning("cannot update %s: %s", path, exc.message)
        return
    _write(path, DetectionRecord(record.target, record.at,
                                 tuple(i for i in record.issues if i.id not in ids)))


def last_detection(state_dir: Path, slug: str) -> DetectionRecord | None:
    """The target's record; None when there is none or it cannot be read."""
    path = record_path(state_dir, slug)
    try:
        return _read(path) if path.exists() else None
    except StateError:
        return None


def load_detections(state_dir: Path) -> tuple[list[DetectionRecord], list[str]]:
    """Every readable record, and a reason for each unreadable one."""
    directory = state_dir / DIRECTORY
    if not directory.is_dir():
        return [], []
    records, problems = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            records.append(_read(path))
        except StateError as exc:
            problems.append(f"{path}: {exc.message}")
    return records, problems


def _write(path: Path, record: DetectionRecord) -> None:
    try:
        ensure_private_dir(path.parent)
        atomic_write(path, record.as_json(), mode=0o600)
    except StateError as exc:
        log.warning("detection of %s not recorded for metrics: %s", record.target, exc.message)


def _read(path: Path) -> DetectionRecord:
    """Raises: StateError: unreadable, or not a record this module wrote."""
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise StateError("not a detection record (not a JSON object)")
    try:
        issues = tuple(_issue(item) for item in data["issues"][:MAX_ISSUES])
        return DetectionRecord(str(data["target"]), _number(data["at"]), issues)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"not a detection record ({type(exc).__name__}: {exc})") from exc


def _issue(item: object) -> OpenIssue:
    if not isinstance(item, dict):
        raise TypeError("an issue is not an object")
    severity = str(item["severity"])
    if severity not in _SEVERITIES:
        raise ValueError(f"unknown severity {severity[:40]!r}")
    return OpenIssue(str(item["id"]), str(item["component"]), severity, _number(item["first_seen"]))


def _number(value: object) -> float:
    # bool is an int to Python; a timestamp of True is a forged or broken file.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"not a finite number: {str(value)[:40]!r}")
    return float(value)
