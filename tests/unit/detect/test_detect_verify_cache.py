"""dpkg --verify answers kept while nothing they looked at changed: the agent's fingerprint and the
cache's rules (reuse, racy, failures)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.agent.remote import vmrepair_agent
from orchestrator.detect.answer_store import MAX_OUTPUT_BYTES, AnswerStore, store_path, target_scope
from orchestrator.detect.verify_cache import VerifyCache
from orchestrator.errors import AgentError
from orchestrator.transport.base import CommandResult

OLD_NS = 1_700_000_000 * 10**9


@pytest.fixture
def dpkg_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    info, status = tmp_path / "info", tmp_path / "status"
    info.mkdir()
    status.write_text("Package: app\n")
    files = tmp_path / "usr"
    files.mkdir()
    (files / "app").write_bytes(b"\x7fELF")
    (info / "app.list").write_text(f"/.\n{files}\n{files / 'app'}\n{files / 'gone'}\n")
    (info / "app.md5sums").write_text("x  usr/app\n")
    for path in (status, files / "app", info / "app.list", info / "app.md5sums"):
        os.utime(path, ns=(OLD_NS, OLD_NS))
    monkeypatch.setattr(vmrepair_agent, "DPKG_INFO", str(info))
    monkeypatch.setattr(vmrepair_agent, "DPKG_STATUS_FILE", str(status))
    return files


def _fingerprint(*binaries: object) -> dict[str, object]:
    answer = vmrepair_agent.handle({"op": "dpkg_fingerprint", "args": {"binaries": list(binaries)}},
                                   work_dir="/tmp")
    assert answer["ok"], answer
    result = answer["result"]
    assert isinstance(result, dict)
    return result


def test_the_fingerprint_changes_with_a_packaged_file_and_not_with_its_directory(dpkg_root: Path) -> None:
    first = _fingerprint("app")
    assert first["files"] == 4 and first["racy"] is True   # ctime is now: the utime itself changed it
    assert _fingerprint("app")["fingerprint"] == first["fingerprint"]
    (dpkg_root / "unrelated").write_text("x")          # the directory's times move: not counted
    assert _fingerprint("app")["fingerprint"] == first["fingerprint"]
    (dpkg_root / "app").write_bytes(b"\x7fELF changed")
    assert _fingerprint("app")["fingerprint"] != first["fingerprint"]


def test_a_package_without_records_and_bad_names(dpkg_root: Path) -> None:
    assert _fingerprint("ghost")["files"] == 0
    for bad in ([], ["../../etc/shadow"], ["app; rm"], [1], ["a"] * 65):
        answer = vmrepair_agent.handle({"op": "dpkg_fingerprint", "args": {"binaries": bad}}, work_dir="/tmp")
        assert answer["ok"] is False and answer["code"] == "invalid"


def test_a_list_that_is_a_symlink_or_a_fifo_fails_the_fingerprint_and_never_hangs(dpkg_root: Path) -> None:
    """dpkg's lists are read as deb_meta reads them (one reader): a FIFO never blocks, a symlink is
    refused, and a failed fingerprint only means the package is verified again."""
    info = Path(vmrepair_agent.DPKG_INFO)
    os.mkfifo(info / "fifo.list")
    (info / "link.list").symlink_to(info / "app.list")
    for binary in ("fifo", "link"):
        answer = vmrepair_agent.handle({"op": "dpkg_fingerprint", "args": {"binaries": [binary]}},
                                       work_dir="/tmp")
        assert (answer["ok"], answer["code"]) == (False, "invalid"), answer


class _Agent:
    def __init__(self) -> None:
        self.answers: list[tuple[str, bool] | AgentError] = []

    def dpkg_fingerprint(self, binaries: object) -> tuple[str, bool]:
        answer = self.answers.pop(0)
        if isinstance(answer, AgentError):
            raise answer
        return answer


def _verify(exit_status: int = 0, dropped: int = 0) -> CommandResult:
    return CommandResult(("dpkg", "--verify"), exit_status, b"", b"", stdout_dropped=dropped)


def test_an_answer_is_reused_only_while_the_fingerprint_holds_and_is_not_racy() -> None:
    agent = _Agent()
    cache = VerifyCache(agent)
    runs: list[int] = []

    def run() -> CommandResult:
        runs.append(1)
        return _verify()

    agent.answers = [("a" * 64, False), ("a" * 64, False), ("b" * 64, False), ("b" * 64, True),
                     ("b" * 64, False), AgentError("gone"), ("b" * 64, False)]
    assert cache.verify(["app"], run)[1] is False and len(runs) == 1
    assert cache.verify(["app"], run)[1] is True and len(runs) == 1       # unchanged: reused
    assert cache.verify(["app"], run)[1] is False and len(runs) == 2      # changed: verified again
    assert cache.verify(["app"], run)[1] is False and len(runs) == 3      # racy: verified, not kept
    assert cache.verify(["app"], run)[1] is False and len(runs) == 4      # so nothing to reuse
    assert cache.verify(["app"], run)[1] is False and len(runs) == 5      # no fingerprint: verified
    assert cache.verify(["app"], run)[1] is True and cache.reused == 2


def _two_at_once(cache: VerifyCache, first: Callable[[], CommandResult | None],
                 second: Callable[[], CommandResult | None]) -> list[tuple[CommandResult | None, bool]]:
    """The first verify is under way (blocked in ``first`` until the second asked) when the second
    asks for the same packages at the same fingerprint; answers in that order."""
    asked_second = threading.Event()
    started = threading.Event()

    def blocked() -> CommandResult | None:
        started.set()
        assert asked_second.wait(timeout=5)
        time.sleep(0.05)   # the second is waiting on the first's answer by now
        return first()

    answers: dict[int, tuple[CommandResult | None, bool]] = {}
    one = threading.Thread(target=lambda: answers.__setitem__(1, cache.verify(["app"], blocked)))
    one.start()
    assert started.wait(timeout=5)
    two = threading.Thread(target=lambda: (asked_second.set(),
                                           answers.__setitem__(2, cache.verify(["app"], second))))
    two.start()
    one.join(timeout=5)
    two.join(timeout=5)
    return [answers[1], answers[2]]


def test_a_second_verify_of_the_same_packages_waits_for_the_one_under_way() -> None:
    """Two batches at once (a stability round, the regression check): one dpkg --verify, not two."""
    agent = _Agent()
    agent.answers = [("a" * 64, False), ("a" * 64, False)]
    runs: list[str] = []
    cache = VerifyCache(agent)
    answer = _verify()
    got = _two_at_once(cache, lambda: (runs.append("first"), answer)[1],
                       lambda: (runs.append("second"), _verify())[1])
    assert runs == ["first"]
    assert got == [(answer, False), (answer, True)]
    assert cache.reused == 1


def test_a_failed_verify_under_way_makes_the_waiter_ask_for_itself() -> None:
    agent = _Agent()
    agent.answers = [("a" * 64, False), ("a" * 64, False)]
    runs: list[str] = []
    got = _two_at_once(VerifyCache(agent), lambda: (runs.append("first"), _verify(exit_status=2))[1],
                       lambda: (runs.append("second"), _verify())[1])
    assert runs == ["first", "second"]
    assert [flag for _, flag in got] == [False, False]


@pytest.mark.parametrize("result", [_verify(exit_status=2), _verify(dropped=10), None])
def test_a_failed_or_cut_verify_is_never_kept(result: CommandResult | None) -> None:
    agent = _Agent()
    agent.answers = [("a" * 64, False), ("a" * 64, False)]
    cache = VerifyCache(agent)
    cache.verify(["app"], lambda: result)
    assert cache.verify(["app"], _verify)[1] is False


def test_only_a_change_within_the_racy_window_is_racy(
        dpkg_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files' ctimes are a few milliseconds old here: racy within 2 s, not within a window of 0."""
    assert _fingerprint("app")["racy"] is True
    monkeypatch.setattr(vmrepair_agent, "RACY_NS", 0)
    time.sleep(0.01)
    assert _fingerprint("app")["racy"] is False


def test_a_stored_answer_warms_the_next_process_only_under_the_same_fingerprint(tmp_path: Path) -> None:
    path = store_path(tmp_path, target_scope("vm-patient"))
    runs: list[int] = []

    def run() -> CommandResult:
        runs.append(1)
        return CommandResult(("dpkg", "--verify", "--", "app"), 1, b"??5?????? c /etc/app.conf\n", b"")

    first = _Agent()
    first.answers = [("a" * 64, False)]
    assert VerifyCache(first, AnswerStore(path)).verify(["app"], run)[1] is False
    assert path.stat().st_mode & 0o777 == 0o600
    # A new process (a new Detector, a new store object) with nothing in memory:
    later = _Agent()
    later.answers = [("a" * 64, False), ("b" * 64, False), ("a" * 64, True)]
    cache = VerifyCache(later, AnswerStore(path))
    kept, reused = cache.verify(["app"], run)
    assert reused is True and len(runs) == 1
    assert kept is not None and kept.exit_status == 1 and kept.stdout == b"??5?????? c /etc/app.conf\n"
    assert cache.verify(["app"], run)[1] is False and len(runs) == 2    # another fingerprint: verified
    assert cache.verify(["app"], run)[1] is False and len(runs) == 3    # racy: never from the store
    # Both fingerprints' answers are kept (a template's VM and a layer's VM share the sandbox scope).
    other = _Agent()
    other.answers = [("b" * 64, False), ("a" * 64, False)]
    cache = VerifyCache(other, AnswerStore(path))
    assert cache.verify(["app"], run)[1] is True and cache.verify(["app"], run)[1] is True
    assert len(runs) == 3


def test_the_store_keeps_only_complete_answers_and_survives_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "verify.json"
    store = AnswerStore(path, max_entries=2)
    store.keep_verify(["cut"], "f", _verify(dropped=1))
    store.keep_verify(["big"], "f", CommandResult(("dpkg",), 1, b"x" * (MAX_OUTPUT_BYTES + 1), b""))
    assert not path.exists()
    for name in ("one", "two", "three"):
        store.keep_verify([name], "f", _verify())
    fresh = AnswerStore(path)
    assert fresh.verify(["one"], "f") is None       # least recently used, over the cap
    assert fresh.verify(["three"], "f") is not None and fresh.verify(["two"], "g") is None
    for garbage in (b"{not json", b'{"format": 99, "entries": {}}', b"[]",
                    b'{"format": 2, "entries": {"f\\u0000x": {"argv": 1}}}'):
        path.write_bytes(garbage)
        assert AnswerStore(path).verify(["x"], "f") is None
    path.unlink()
    (tmp_path / "elsewhere.json").write_bytes(json.dumps({"format": 2, "entries": {}}).encode())
    path.symlink_to(tmp_path / "elsewhere.json")
    assert AnswerStore(path).verify(["x"], "f") is None
    path.unlink()
    os.mkfifo(path)                      # never waits for a writer
    assert AnswerStore(path).verify(["x"], "f") is None


def test_a_store_that_cannot_be_written_is_only_no_reuse(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    store = AnswerStore(blocked / "answer-cache" / "x.json")   # its directory cannot be made
    store.keep_verify(["app"], "f", _verify())
    assert store.verify(["app"], "f") is not None                  # still answered from memory
    assert AnswerStore(blocked / "answer-cache" / "x.json").verify(["app"], "f") is None


def test_scopes_are_separate_files_named_by_digest(tmp_path: Path) -> None:
    a, b = store_path(tmp_path, target_scope("../../etc")), store_path(tmp_path, "sandbox")
    assert a != b and a.parent == b.parent == tmp_path / "answer-cache" and ".." not in a.name
