"""QUARANTINE.md: appended with a precondition, started afresh when too large, never through a dir."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.errors import QuarantineError
from orchestrator.quarantine import logbook
from tests.unit.repair.fakes import FakeAgent, Node

LOG = "/var/lib/vmrepair/quarantine/QUARANTINE.md"


def test_first_entry_starts_the_log_with_its_header() -> None:
    agent = FakeAgent()
    logbook.append_entry(agent, LOG, "## one\n")
    node = agent.fs[LOG]
    assert node.data == logbook.HEADER.encode() + b"\n## one\n"
    assert (node.mode, node.uid, node.gid) == (0o640, 0, 0)


def test_entries_are_appended_keeping_mode_and_owner() -> None:
    agent = FakeAgent({LOG: Node("file", b"# log\n", 0o600, 0, 4)})
    logbook.append_entry(agent, LOG, "## two\n")
    node = agent.fs[LOG]
    assert node.data == b"# log\n\n## two\n"
    assert (node.mode, node.gid) == (0o600, 4)


def test_an_oversized_log_is_moved_aside_and_a_new_one_begun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logbook, "MAX_LOG_BYTES", 10)
    old = b"# log\n## many entries\n"
    agent = FakeAgent({LOG: Node("file", old)})
    logbook.append_entry(agent, LOG, "## next\n")
    archive = f"/var/lib/vmrepair/quarantine/QUARANTINE-{hashlib.sha256(old).hexdigest()[:12]}.md"
    assert agent.fs[archive].data == old
    assert agent.fs[LOG].data.startswith(logbook.HEADER.encode())


def test_refuses_a_log_path_that_is_a_directory() -> None:
    agent = FakeAgent({LOG: Node("dir", mode=0o755)})
    with pytest.raises(QuarantineError) as err:
        logbook.append_entry(agent, LOG, "## x\n")
    assert err.value.message == f"quarantine log {LOG} is a dir, not a file"
    assert err.value.remedy == f"move {LOG} away; vmrepair starts a new log"


def test_each_event_is_one_heading_line_a_reader_can_grep() -> None:
    """Issue 16: the log reads one line per event (``grep '^##'``), reason included and escaped."""
    from orchestrator.quarantine.manifest import QuarantineRecord, Status, UnitRecord

    record = QuarantineRecord(
        component="cache", directory="/var/lib/vmrepair/quarantine/cache-1", status=Status("quarantined"),
        reason="restart loop: redis.service restarted itself 6 times within 900 s (restart loop)\n## x",
        quarantined_at="2026-12-06T20:00:00Z", host="web1", paths=(),
        units=(UnitRecord("redis.service", "loaded", "activating", "enabled"),))
    agent = FakeAgent()
    logbook.append_entry(agent, LOG, logbook.quarantine_entry(record))
    logbook.append_entry(agent, LOG, logbook.release_entry(record, released_at="2026-12-07T08:00:00Z",
                                                           restored=0, outcome="released; units started"))
    text = agent.fs[LOG].data.decode()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## 2026-12-06T20:00:00Z: quarantined `cache`: restart loop: redis.service restarted itself 6 times "
        "within 900 s (restart loop) ## x",
        "## 2026-12-07T08:00:00Z: released `cache`: released; units started",
    ]
    assert "`grep '^##'` lists them one per line" in text
    assert "- units stopped and disabled: `redis.service` (was enabled, activating)" in text
