"""What the session store says about repairs: outcomes, time to repair, troubleshooting-VM readiness.

Read from the files every run leaves (:mod:`orchestrator.session.store`):

- outcome: ``session.json`` ``status`` of a finished run (dry runs repair nothing and are left out);
- time to repair: from the end of the run's ``detect`` stage (``timeline.json``) to ``finished_at``,
  for runs that ended ``repaired`` (verified on the target, after its reboot when the fix needed one);
  a fix left ``pending_reboot`` is not counted;
- VM readiness: the ``sandbox`` events of ``evidence.jsonl``: ``ready`` (with ``boot_seconds``) after
  ``booting``, or the sandbox stage ``finished`` as ``failed`` with no ``ready`` since the last boot.

What was read of a finished session is cached for the life of the :class:`SessionScanner` (the
daemon keeps one), keyed by its id and the file's change time: each scrape then stats every session
and reads only new or changed ones.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.model import SessionStatus
from orchestrator.session.evidence import Stage
from orchestrator.session.jsonfile import UNREADABLE, read_json_file, read_regular_file
from orchestrator.timestamps import parse_timestamp

#: Only the newest sessions are read: bounds a scrape whatever the retention.
MAX_SESSIONS = 5000
#: Readiness is that of the newest troubleshooting VM among this many newest sessions.
READINESS_LOOKBACK = 50
#: An evidence file larger than this is not read for readiness (its VM counts as unknown).
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
#: Outcome labels: the statuses a run can end with, plus unreadable; anything else is ``unknown``.
OUTCOMES = frozenset({*(str(s) for s in SessionStatus), UNREADABLE})
RUNNING = "running"
_SANDBOX_MARK = b'"stage": "sandbox"'


@dataclass(frozen=True)
class Readiness:
    """How the last troubleshooting-VM boot of a session ended."""

    is_ok: bool
    at: float
    #: Seconds from the start of the boot to the VM answering; None when it never became ready.
    seconds: float | None


@dataclass(frozen=True)
class SessionFacts:
    id: str
    target: str
    outcome: str
    finished_at: float | None
    #: Seconds from detection to verified repair (repaired runs only).
    repair_seconds: float | None
    is_dry_run: bool
    has_sandbox: bool


@dataclass(frozen=True)
class SessionSummary:
    facts: tuple[SessionFacts, ...]
    readiness: Readiness | None


class SessionScanner:
    """Reads the session store; thread-safe (the daemon's API threads scrape concurrently)."""

    def __init__(self, sessions_dir: Path) -> None:
        self._dir = sessions_dir
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[int, SessionFacts]] = {}
        self._readiness: dict[str, tuple[int, Readiness | None]] = {}

    def scan(self) -> SessionSummary:
        """Raises: OSError: the sessions directory exists but cannot be listed."""
        with self._lock:
            names = _session_names(self._dir)[:MAX_SESSIONS]
            facts = [self._facts_of(name) for name in names]
            readiness = None
            for fact in facts[:READINESS_LOOKBACK]:
                if fact.has_sandbox and (readiness := self._readiness_of(fact)) is not None:
                    break
            # Forget what left the store (retention), so the caches stay as small as the store.
            keep = set(names)
            self._facts = {k: v for k, v in self._facts.items() if k in keep}
            self._readiness = {k: v for k, v in self._readiness.items() if k in keep}
            return SessionSummary(tuple(f for f in facts if f.outcome != RUNNING), readiness)

    def _facts_of(self, name: str) -> SessionFacts:
        stamp = _changed(self._dir / name / "session.json")
        cached = self._facts.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        facts = read_facts(self._dir / name)
        if facts.outcome != RUNNING:
            self._facts[name] = (stamp, facts)
        return facts

    def _readiness_of(self, fact: SessionFacts) -> Readiness | None:
        path = self._dir / fact.id / "evidence.jsonl"
        stamp = _changed(path)
        cached = self._readiness.get(fact.id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        readiness = read_readiness(path)
        if fact.outcome != RUNNING:
            self._readiness[fact.id] = (stamp, readiness)
        return readiness


def _changed(path: Path) -> int:
    """The file's change time (ns), or -1 when it cannot be stat'ed (then it is read again)."""
    try:
        return path.stat().st_ctime_ns
    except OSError:
        return -1


def _session_names(sessions_dir: Path) -> list[str]:
    """Session directory names, newest first (ids begin with their UTC start time)."""
    if not sessions_dir.is_dir():
        return []
    return sorted((e.name for e in sessions_dir.iterdir() if e.is_dir() and not e.is_symlink()),
                  reverse=True)


def read_facts(directory: Path) -> SessionFacts:
    """What one session says; an unreadable ``session.json`` gives outcome ``unreadable``."""
    try:
        data = _object(read_json_file(directory / "session.json"))
    except StateError:
        return SessionFacts(directory.name, "", UNREADABLE, None, None, False, False)
    status = str(data.get("status", ""))
    outcome = status if status in OUTCOMES or status == RUNNING else "unknown"
    finished = _moment(data.get("finished_at"))
    stages = _timeline(directory)
    detected = stages.get(str(Stage.DETECT))
    repair_s = None
    if outcome == str(SessionStatus.REPAIRED) and finished is not None and detected is not None:
        repair_s = max(finished - detected, 0.0)
    return SessionFacts(directory.name, str(data.get("target", "")), outcome, finished, repair_s,
                        data.get("dry_run") is True, str(Stage.SANDBOX) in stages)


def _timeline(directory: Path) -> dict[str, float]:
    """Stage name -> when it ended (the first entry of each name); empty when unreadable."""
    try:
        entries = read_json_file(directory / "timeline.json")
    except StateError:
        return {}
    ends: dict[str, float] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or str(entry.get("name")) in ends:
            continue
        began, took = _moment(entry.get("started_at")), entry.get("duration_s")
        if began is not None and isinstance(took, int | float) and not isinstance(took, bool):
            ends[str(entry["name"])] = began + float(took)
    return ends


def read_readiness(evidence: Path) -> Readiness | None:
    """How the session's last troubleshooting-VM boot ended; None: no boot ended, or unreadable."""
    try:
        raw = read_regular_file(evidence, MAX_EVIDENCE_BYTES)
    except StateError:
        return None
    last: Readiness | None = None
    booting = False
    for line in raw.splitlines():
        if _SANDBOX_MARK not in line:
            continue  # cheap filter: most lines are other stages
        try:
            event = _object(json.loads(line))
        except (ValueError, StateError):
            continue  # a torn last line of a run that crashed
        at = _moment(event.get("ts"))
        kind = event.get("event")
        if at is None:
            continue
        if kind == "booting":
            booting = True
        elif kind == "ready":
            booting = False
            seconds = event.get("boot_seconds")
            last = Readiness(True, at, float(seconds) if isinstance(seconds, int | float)
                             and not isinstance(seconds, bool) else None)
        elif kind in ("finished", "error") and booting and event.get("status", "failed") == "failed":
            booting = False
            last = Readiness(False, at, None)
    return last


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateError("not a JSON object")
    return value


def _moment(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    moment = parse_timestamp(value)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # vmrepair writes UTC; a zone-less time is taken as such
    return moment.timestamp()
