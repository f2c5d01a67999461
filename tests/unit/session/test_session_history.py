"""What earlier sessions say about a target: the host layer the last finished run used."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.session.history import last_layer

KEY = "ab" * 32


def _session(sessions: Path, stamp: str, target: str, status: str = "repaired", **meta: object) -> None:
    """A session directory as the store writes it (named by its start, newest sorts last)."""
    directory = sessions / f"20261206T{stamp}Z-abcdef"
    directory.mkdir(parents=True)
    (directory / "session.json").write_text(json.dumps({"target": target, "status": status, **meta}))


def test_the_newest_finished_run_on_the_target_decides(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    assert last_layer(sessions, "vm:web") == ""            # no sessions directory at all
    _session(sessions, "100000", "vm:web", layer=KEY)
    _session(sessions, "100100", "vm:other")               # another target: not looked at
    _session(sessions, "100200", "vm:web", status="running")   # the run asking: not finished
    assert last_layer(sessions, "vm:web") == KEY
    _session(sessions, "100300", "vm:web")                 # a later run on the plain template
    assert last_layer(sessions, "vm:web") == ""


def test_a_hostile_or_broken_record_is_no_hint(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    _session(sessions, "100000", "vm:web", layer=["not", "a", "key"])
    assert last_layer(sessions, "vm:web") == ""
    (sessions / "20261206T100100Z-abcdef").mkdir()
    (sessions / "20261206T100100Z-abcdef" / "session.json").write_text("{not json")
    assert last_layer(sessions, "vm:web") == ""
