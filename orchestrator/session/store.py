"""A session is a directory under ``<state>/sessions/<id>/``:

- ``session.json``   id, target, status, timestamps, issues, summary (rewritten atomically)
- ``timeline.json``  one entry per stage: name, started_at, duration_s, status, detail
- ``evidence.jsonl`` every event, one JSON object per line, appended as it happens
- ``<stage>.json``   the structured result of a stage (detect, triage, capture, reproduce, diagnosis,
                     attempts, validation, fix-package, apply)
- ``report.md``      rendered for people from the files above

Strings that came from a target or guest are passed through :func:`cap_text` before they are stored.

A session given an :class:`~orchestrator.audit.sink.AuditSink` mirrors its stage ``started``,
``finished`` and ``error`` events into it as ``stage_started`` / ``stage_finished`` / ``stage_error``
records (component ``pipeline``). The evidence file stays the primary record: an audit log that
cannot be written is logged and noted once in the evidence, and never fails the run (it would
otherwise replace the real error of a failing stage).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.audit.sink import AuditSink
from orchestrator.errors import AuditError, StateError, VmRepairError
from orchestrator.fsutil import atomic_write, ensure_private_dir
from orchestrator.model import SessionStatus
from orchestrator.session.jsonfile import UNREADABLE, read_json_file, read_session_meta, scan_sessions
from orchestrator.session.owner import this_process
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.output import cap_text as _cap_text

log = logging.getLogger(__name__)

#: Per-string cap for untrusted text stored in evidence.
MAX_TEXT = 16 * 1024
#: Evidence events mirrored into the audit sink, and the audit event each becomes.
AUDITED_EVENTS = {"started": "stage_started", "finished": "stage_finished", "error": "stage_error"}


#: The names this module gave the one timestamp format's functions before it had a module of its own;
#: kept for code written against them. New code imports :mod:`orchestrator.timestamps`.


def cap_text(text: str | bytes, limit: int = MAX_TEXT) -> str:
    """:func:`orchestrator.transport.output.cap_text` with the session's default cap (16 KiB)."""
    return _cap_text(text, limit)


@dataclass
class StageRecord:
    name: str
    started_at: str
    duration_s: float = 0.0
    status: str = "running"
    detail: str = ""


@dataclass
class Session:
    id: str
    dir: Path
    target: str
    started_at: str
    status: SessionStatus | None = None
    timeline: list[StageRecord] = field(default_factory=list)
    _meta: dict[str, Any] = field(default_factory=dict)
    #: Where stage events are mirrored (the audit log); None: nowhere.
    audit: AuditSink | None = field(default=None, repr=False, compare=False)
    _audit_failed: bool = field(default=False, repr=False, compare=False)

    # -- writing ------------------------------------------------------------------------------
    def event(self, stage: str, event: str, **data: Any) -> None:
        """Append one evidence line (and mirror stage events into the audit sink).

        Raises:
            StateError: the evidence file cannot be written.
        """
        record = {"ts": now_timestamp(), "session": self.id, "stage": stage, "event": event, **data}
        line = json.dumps(record, default=str, ensure_ascii=True) + "\n"
        try:
            # One write() per record on an O_APPEND fd: concurrent readers never see half a line.
            fd = os.open(self.dir / "evidence.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateError(f"cannot append evidence in {self.dir}: {exc.strerror}") from exc
        if self.audit is not None and event in AUDITED_EVENTS:
            self._mirror(self.audit, stage, event, data)

    def _mirror(self, audit: AuditSink, stage: str, event: str, data: dict[str, Any]) -> None:
        status = {"started": "running", "error": "error"}.get(event) or str(data.get("status", ""))
        try:
            audit.record(AUDITED_EVENTS[event], component="pipeline", status=status,
                         details={"session": self.id, "target": self.target, "stage": stage, **data})
        except AuditError as exc:
            log.warning("%s (remedy: %s)", exc.message, exc.remedy)
            if not self._audit_failed:
                self._audit_failed = True
                self.event(stage, "audit_failed", message=exc.message, remedy=exc.remedy or "")

    def write_json(self, name: str, data: Any) -> Path:
        path = self.dir / f"{name}.json"
        atomic_write(path, (json.dumps(data, indent=2, default=str) + "\n").encode(), mode=0o600)
        return path

    def set_meta(self, **data: Any) -> None:
        self._meta.update(data)
        self._save()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[StageRecord]:
        """Time a stage; its record ends ``ok`` or ``failed`` (with the error message)."""
        record = StageRecord(name, now_timestamp())
        self.timeline.append(record)
        began = time.monotonic()
        self.event(name, "started")
        # Written now as well as at the end: a run killed inside this stage leaves it in the timeline
        # as ``running``, which is how the next start names the stage it was interrupted in.
        self.write_json("timeline", [vars(r) for r in self.timeline])
        try:
            yield record
        except VmRepairError as exc:
            record.status, record.detail = "failed", cap_text(exc.message, 2000)
            raise
        except BaseException as exc:
            record.status, record.detail = "failed", f"{type(exc).__name__}: {cap_text(str(exc), 2000)}"
            raise
        else:
            if record.status == "running":
                record.status = "ok"
        finally:
            record.duration_s = round(time.monotonic() - began, 3)
            self.event(name, "finished", status=record.status, duration_s=record.duration_s,
                       detail=record.detail)
            self.write_json("timeline", [vars(r) for r in self.timeline])

    def finish(self, status: SessionStatus, summary: str) -> None:
        self.status = status
        self.set_meta(status=str(status), summary=summary, finished_at=now_timestamp())

    def _save(self) -> None:
        data = {"id": self.id, "target": self.target, "started_at": self.started_at, **self._meta}
        self.write_json("session", data)


def new_session(sessions_dir: Path, target: str, *, audit: AuditSink | None = None) -> Session:
    ensure_private_dir(sessions_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    session_id = f"{stamp}-{secrets.token_hex(3)}"
    directory = ensure_private_dir(sessions_dir / session_id)
    session = Session(session_id, directory, target, now_timestamp(), audit=audit)
    # The owner lets the next start tell a run still going from one that was killed (session.owner).
    session.set_meta(status="running", owner=this_process().as_dict())
    return session


def open_session(directory: Path, *, audit: AuditSink | None = None, with_timeline: bool = True) -> Session:
    """An existing session, to add to it (closing a run that was interrupted). ``with_timeline=False``:
    its timeline is left unread (and empty here), for a session whose timeline.json cannot be read.

    Raises:
        StateError: its session.json (or timeline.json, when read) cannot be read.
    """
    meta = read_session_meta(directory)
    path = directory / "timeline.json"
    try:
        loaded = read_json_file(path) if with_timeline and path.exists() else []
    except StateError as exc:
        raise StateError(f"session {directory.name}: unreadable timeline.json ({exc.message})") from exc
    timeline = [_stage_record(e) for e in (loaded if isinstance(loaded, list) else []) if isinstance(e, dict)]
    rest = {k: v for k, v in meta.items() if k not in ("id", "target", "started_at")}
    return Session(directory.name, directory, str(meta.get("target") or ""),
                   str(meta.get("started_at") or ""), timeline=timeline, _meta=rest, audit=audit)


def _stage_record(entry: dict[str, Any]) -> StageRecord:
    """A timeline entry as written by :meth:`Session.stage` (the file is untrusted: values coerced)."""
    duration = entry.get("duration_s")
    return StageRecord(str(entry.get("name") or "?")[:200], str(entry.get("started_at") or ""),
                       float(duration) if isinstance(duration, int | float) else 0.0,
                       str(entry.get("status") or "")[:40], cap_text(str(entry.get("detail") or ""), 2000))


def load_session_meta(directory: Path) -> dict[str, Any]:
    """Raises: StateError: session.json is missing, not a regular file, too large or deep, or not a
    JSON object (see :mod:`orchestrator.session.jsonfile`)."""
    return read_session_meta(directory)


def list_sessions(sessions_dir: Path) -> list[dict[str, Any]]:
    """Readable sessions, newest first (listings that must show unreadable ones too use
    :func:`~orchestrator.session.jsonfile.scan_sessions`)."""
    return [meta for meta in scan_sessions(sessions_dir) if meta.get("status") != UNREADABLE]
