"""Answers kept on disk: .deb member headers (the ``dpkg --verify`` half is in test_detect_verify_cache)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.agent.api import DebEntry, DebMeta
from orchestrator.detect import pkgmeta
from orchestrator.detect.answer_store import MAX_OUTPUT_BYTES, AnswerStore
from tests.unit.detect.test_detect_pkgmeta import DEB, NGINX, SHIPPED, agent, host

PATHS = ("/etc/nginx", "/etc/nginx/local.conf", "/etc/nginx/nginx.conf")
META = DebMeta((SHIPPED[0], SHIPPED[1]), ("/etc/nginx/local.conf",))


def _deb_reads(fake: object) -> list[str]:
    return [call[1][0] for call in fake.calls if call[0] == "deb_meta"]  # type: ignore[attr-defined]


def test_a_new_process_reads_no_deb_its_scope_already_read(tmp_path: Path) -> None:
    """The first Detector of the scope decompresses the .debs; the next one (a new store object, as in
    a new process) answers the same file name and paths from the store and reads nothing, with the same
    verdict."""
    path = tmp_path / "answers.json"
    first = agent()
    before = pkgmeta.probe_pkgmeta(host(), first, NGINX, debs=pkgmeta.DebMetaCache(AnswerStore(path)))
    assert sorted(_deb_reads(first)) == [DEB, "/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb"]
    assert path.stat().st_mode & 0o777 == 0o600
    later = agent()
    after = pkgmeta.probe_pkgmeta(host(), later, NGINX, debs=pkgmeta.DebMetaCache(AnswerStore(path)))
    # nginx's own .deb is not in the cache: "no such file" is never kept on disk, so it is asked again.
    assert _deb_reads(later) == ["/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb"]
    assert (after.ok, after.summary, after.evidence) == (before.ok, before.summary, before.evidence)


def test_other_paths_or_another_version_are_read_again(tmp_path: Path) -> None:
    store = AnswerStore(tmp_path / "answers.json")
    store.keep_deb_meta(DEB, PATHS, META)
    assert store.deb_meta(DEB, PATHS) == META
    assert AnswerStore(tmp_path / "answers.json").deb_meta(DEB, PATHS) == META
    assert store.deb_meta(DEB, PATHS[:2]) is None
    assert store.deb_meta(DEB.replace("1.22.1-9", "1.22.1-10"), PATHS) is None


def test_an_entry_that_is_not_an_answer_to_its_question_is_ignored(tmp_path: Path) -> None:
    """The file is root's, but it is read as the agent's answer is: a malformed entry, or one that
    does not answer exactly the paths asked about, means no reuse."""
    path = tmp_path / "answers.json"
    AnswerStore(path).keep_deb_meta(DEB, PATHS, META)
    doc = json.loads(path.read_text())
    (key, entry), = doc["entries"].items()
    answers: list[object] = [{"entries": "x", "absent": []}, {"entries": [], "absent": []},
                             {"entries": [], "absent": [*PATHS, "/etc/passwd"]}, None,
                             {**entry["answer"], "extra": 1}]
    for answer in answers:
        doc["entries"][key] = {**entry, "answer": answer}
        path.write_text(json.dumps(doc))
        assert AnswerStore(path).deb_meta(DEB, PATHS) is None, answer


def test_an_oversized_answer_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    many = tuple(DebEntry(f"/usr/share/doc/x/{i:05d}-{'y' * 40}", "file", 0o644, 0, 0, "root", "root")
                 for i in range(MAX_OUTPUT_BYTES // 100))
    AnswerStore(path).keep_deb_meta(DEB, [e.path for e in many], DebMeta(many))
    assert not path.exists()
