"""jsonl_check and jsonl_repair: every kind of damage a crashed or disk-full writer leaves behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.remote import vmrepair_agent

# One line per damage class, in file order: (raw line, what the repair must make of it).
DAMAGED: list[tuple[bytes, str | list[bytes]]] = [
    (b'{"a": 1}', "kept"),
    (b"", "blank"),
    (b'{"b": 2', [b'{"b": 2}']),                            # missing closing brace
    (b'{"c": "x', [b'{"c": "x"}']),                         # cut inside a string
    (b'{"d": 4} trailing garbage', [b'{"d": 4}']),
    (b'{"e": 5}{"f": 6}', [b'{"e": 5}', b'{"f": 6}']),      # objects run together
    (b'\x00\x00{"g": 7}\x00', [b'{"g": 7}']),               # NUL padding from a crash
    (b"   ", "blank"),
    (b"[1, 2]", "quarantine"),                              # JSON, but not an object
    (b'\xff\xfe{"h": 8}', "quarantine"),                    # invalid UTF-8
    (b"complete garbage", "quarantine"),
    (b'{"i": 9}', "kept"),
    (b'{"j": "tor', [b'{"j": "tor"}']),                     # torn tail (no newline)
]


def _damaged_log(path: Path) -> bytes:
    data = b"\n".join(line for line, _ in DAMAGED)  # the last line has no newline
    path.write_bytes(data)
    path.chmod(0o640)
    return data


# -- jsonl_check -------------------------------------------------------------------------------


def test_check_reports_every_bad_line_and_the_torn_tail(agent: RemoteAgent, root: Path) -> None:
    _damaged_log(root / "log.jsonl")
    report = agent.jsonl_check(str(root / "log.jsonl"))

    assert (report.exists, report.total_lines, report.good_lines, report.torn_tail) == (True, 13, 2, True)
    bad = dict(report.bad_lines)
    assert sorted(bad) == [3, 4, 5, 6, 7, 9, 10, 11, 13]
    assert bad[9] == "not a JSON object (list)"
    assert bad[10] == "invalid UTF-8 at byte 0"
    assert bad[11] == "not JSON: Expecting value at column 1"
    assert bad[13].startswith("incomplete last line: not JSON:")
    assert not report.ok


@pytest.mark.parametrize(("data", "total", "good", "bad"), [
    (b"", 0, 0, {}),
    (b'{"a":1}\n\x00\x00\x00\n{"b":2}\n', 3, 2, {2: "not JSON: Expecting value at column 1"}),
    (b'{"a":"\x00"}\n', 1, 0, {1: "not JSON: Invalid control character at column 7"}),
    (b'{"a":1}\n\n  \n{"b":2}', 4, 2, {}),          # blank lines are fine; a parsing last line too
    (b'{"a":1}\r\n', 1, 1, {}),                      # CRLF
    (b"\xc3(\n", 1, 0, {1: "invalid UTF-8 at byte 0"}),
])
def test_check_edge_cases(agent: RemoteAgent, root: Path, data: bytes, total: int, *, good: int,
                          bad: dict[int, str]) -> None:
    (root / "log").write_bytes(data)
    report = agent.jsonl_check(str(root / "log"))
    assert (report.exists, report.total_lines, report.good_lines, dict(report.bad_lines)) == (
        True, total, good, bad)
    assert report.torn_tail is False


def test_check_survives_absurd_nesting(agent: RemoteAgent, root: Path) -> None:
    (root / "log").write_bytes(b'{"n":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    ((line, reason),) = agent.jsonl_check(str(root / "log")).bad_lines
    assert (line, reason.split(":")[:2]) == (1, ["not JSON", " RecursionError"])


def test_check_of_a_missing_file(agent: RemoteAgent, root: Path) -> None:
    report = agent.jsonl_check(str(root / "nope"))
    assert (report.exists, report.total_lines, report.ok) == (False, 0, True)


def test_check_refuses_a_directory(agent: RemoteAgent, root: Path) -> None:
    with pytest.raises(AgentFailedError, match="is not a regular file"):
        agent.jsonl_check(str(root))


def test_check_streams_a_huge_single_line(agent: RemoteAgent, root: Path) -> None:
    # 20 MB, past the 16 MiB line cap: reported as bad without being held whole.
    (root / "log").write_bytes(b'{"x":"' + b"a" * 20_000_000 + b'"}\n{"ok":1}\n')
    report = agent.jsonl_check(str(root / "log"))
    assert (report.total_lines, report.good_lines) == (2, 1)
    assert report.bad_lines == ((1, f"line longer than {16 * 1024 * 1024} bytes"),)


def test_check_caps_the_bad_line_list(agent: RemoteAgent, root: Path) -> None:
    (root / "log").write_bytes(b"garbage\n" * 150 + b'{"ok":1}\n')
    report = agent.jsonl_check(str(root / "log"))
    assert (report.total_lines, report.good_lines, len(report.bad_lines)) == (151, 1, 100)
    assert report.bad_lines[-1][0] == 100


# -- jsonl_repair ------------------------------------------------------------------------------


def test_repair_fixes_each_damage_class_and_drops_nothing(agent: RemoteAgent, root: Path) -> None:
    log = root / "log.jsonl"
    original = _damaged_log(log)
    before = agent.jsonl_check(str(log))

    result = agent.jsonl_repair(str(log))

    # Blank lines are kept and the bytes around salvaged objects quarantined as fragments: both used
    # to be dropped (issue 13: every byte ends up in the repaired file or in the quarantine).
    assert (result.kept, result.repaired, result.quarantined, result.fragments) == (4, 6, 3, 3)
    assert result.kept + result.repaired + result.quarantined == before.total_lines
    rewritten = [piece for line, fate in DAMAGED for piece in (
        [line] if fate in ("kept", "blank") else fate if isinstance(fate, list) else [])]
    assert log.read_bytes() == b"".join(piece + b"\n" for piece in rewritten)

    assert result.quarantine_path is not None
    quarantine = Path(result.quarantine_path)
    assert "quarantine" in quarantine.name
    assert quarantine.parent == root
    assert quarantine.read_bytes() == (b' trailing garbage\n\x00\x00\n\x00\n'
                                       b'[1, 2]\n\xff\xfe{"h": 8}\ncomplete garbage\n')
    assert quarantine.stat().st_mode & 0o777 == 0o600

    backup = Path(result.backup_path)
    assert backup.parent == root and backup.name.startswith("log.jsonl.bak-")
    assert backup.read_bytes() == original
    assert backup.stat().st_mode & 0o777 == log.stat().st_mode & 0o777 == 0o640
    assert agent.jsonl_check(str(log)).ok
    assert not [p for p in root.iterdir() if p.name.startswith(".vmrepair-")]


def test_repair_of_a_clean_log_quarantines_nothing(agent: RemoteAgent, root: Path) -> None:
    (root / "log").write_bytes(b'{"a":1}\n{"b":2}\n')
    result = agent.jsonl_repair(str(root / "log"))
    assert (result.kept, result.repaired, result.quarantined, result.quarantine_path) == (2, 0, 0, None)
    assert (root / "log").read_bytes() == b'{"a":1}\n{"b":2}\n'


def test_repair_refuses_symlinks_and_missing_files(agent: RemoteAgent, root: Path) -> None:
    (root / "real").write_bytes(b"x\n")
    (root / "link").symlink_to(root / "real")
    with pytest.raises(AgentFailedError, match="is a symlink; refusing"):
        agent.jsonl_repair(str(root / "link"))
    with pytest.raises(AgentFailedError) as info:
        agent.jsonl_repair(str(root / "missing"))
    assert info.value.code == "not_found"


def test_repair_quarantines_an_oversized_line_verbatim(call: Callable[..., dict[str, Any]], root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmrepair_agent, "MAX_LINE", 1024)
    monkeypatch.setattr(vmrepair_agent, "CHUNK", 700)  # the long line spans several reads
    long_line = b'{"x":"' + b"\xff" * 3000 + b'"}'
    (root / "log").write_bytes(b'{"a":1}\n' + long_line + b'\n{"b":2}\n')

    answer = call("jsonl_repair", path=str(root / "log"))

    assert answer["ok"], answer
    result = answer["result"]
    assert (result["kept"], result["repaired"], result["quarantined"]) == (2, 0, 1)
    assert Path(result["quarantine_path"]).read_bytes() == long_line + b"\n"
    assert (root / "log").read_bytes() == b'{"a":1}\n{"b":2}\n'


def test_repair_gives_up_when_the_log_changes_meanwhile(call: Callable[..., dict[str, Any]], root: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = root / "log"
    log.write_bytes(b'{"a":1}\nbad\n')
    real_scan = vmrepair_agent.scan_lines

    def scan_while_written(fd: int) -> Iterator[tuple[bytes | None, int, int, bool]]:
        with log.open("ab") as writer:  # a writer appends while the repair reads its backup
            writer.write(b'{"late":1}\n')
        yield from real_scan(fd)

    monkeypatch.setattr(vmrepair_agent, "scan_lines", scan_while_written)
    answer = call("jsonl_repair", path=str(log))

    assert answer["code"] == "precondition"
    assert "changed during the repair" in answer["error"]
    assert log.read_bytes() == b'{"a":1}\nbad\n{"late":1}\n'
    assert sorted(p.name for p in root.iterdir()) == ["log"]  # no backup, quarantine or temp left


@pytest.mark.parametrize("data", [b"garbage\n", b"[1]\n\n  \n\x00\x00", b"\xff\xfe"])
def test_repair_refuses_to_empty_a_file_with_nothing_good(call: Callable[..., dict[str, Any]], root: Path,
                                                          data: bytes) -> None:
    (root / "log").write_bytes(data)
    answer = call("jsonl_repair", path=str(root / "log"))
    assert answer["code"] == "invalid"
    assert answer["error"].startswith(f"nothing good to keep in {root / 'log'}: none of its ")
    assert answer["error"].endswith("it was left untouched (the evidence is the file itself)")
    assert (root / "log").read_bytes() == data
    assert sorted(p.name for p in root.iterdir()) == ["log"]
