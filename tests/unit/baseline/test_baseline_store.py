"""load_latest_baseline and Baseline.read: verification, refusals, and reading from files.tar."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import tarfile

import pytest

from orchestrator.agent.api import Placeholder
from orchestrator.baseline import Baseline, load_latest_baseline, record_baseline
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from tests.unit.detect.fakes import FakeAgent, FakeHost, file_entry, make_tar
from tests.unit.template_watch import template_watch

SLUG = "local"
CONF = b"events {}\n"
WATCH = template_watch()
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def store(settings: Settings, tar: bytes, entries: tuple = (), placeholders: tuple = ()) -> Baseline:
    agent = FakeAgent(tar=tar, entries=entries, placeholders=placeholders)
    record_baseline(settings, SLUG, FakeHost(packages={"nginx": "1.22"}).transport(), agent, WATCH,
                    clock=lambda: NOW)
    baseline = load_latest_baseline(settings, SLUG)
    assert baseline is not None
    return baseline


def hardlink_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("etc/shadow-copy")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"root"))
        link = tarfile.TarInfo("etc/nginx/nginx.conf")
        link.type = tarfile.LNKTYPE
        link.linkname = "etc/shadow-copy"
        archive.addfile(link)
    return buffer.getvalue()


def test_nothing_recorded_is_none(settings: Settings) -> None:
    assert load_latest_baseline(settings, SLUG) is None


@pytest.mark.parametrize("member",
                         ["etc/nginx/nginx.conf", "./etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"])
def test_read_returns_the_recorded_content(settings: Settings, member: str) -> None:
    baseline = store(settings, make_tar({member: CONF}), (file_entry("/etc/nginx/nginx.conf", CONF),))
    assert baseline.read("/etc/nginx/nginx.conf") == CONF
    assert baseline.read("/etc/nginx//nginx.conf") == CONF
    entry = baseline.manifest_entry("/etc/nginx/nginx.conf")
    assert entry is not None
    assert (entry.type, entry.size, entry.mode) == ("file", len(CONF), 0o644)
    assert set(baseline.by_path()) == {"/etc/nginx/nginx.conf"}


def test_reader_methods_repair_uses(settings: Settings) -> None:
    entries = (file_entry("/etc/nginx", type_="dir"), file_entry("/etc/nginx/nginx.conf", CONF),
               file_entry("/etc/nginx/sites-enabled/default", type_="symlink"),
               file_entry("/etc/nginx-other", CONF))
    baseline = store(settings, make_tar({"etc/nginx/nginx.conf": CONF}), entries)
    assert baseline.entry("/etc/nginx/nginx.conf") == (0o644, 0, 0)
    assert baseline.entry("/etc/absent") is None
    assert baseline.link("/etc/nginx/sites-enabled/default") == "/elsewhere"
    assert baseline.link("/etc/nginx/nginx.conf") is None
    assert baseline.paths_under("/etc/nginx/") == [
        "/etc/nginx", "/etc/nginx/nginx.conf", "/etc/nginx/sites-enabled/default"]
    assert baseline.paths_under("/") == sorted(e.path for e in entries)
    context = pytest.importorskip("orchestrator.steps.context", reason="repair stage not present")
    assert isinstance(baseline, context.SymlinkBaseline)


def test_facts_are_loaded(settings: Settings) -> None:
    baseline = store(settings, make_tar({}))
    assert baseline.packages["nginx"] == "1.22"
    assert baseline.packages["cron"] is None
    assert baseline.units["ssh.service"]["ActiveState"] == "active"
    assert baseline.info.created_at == "2026-03-01T00:00:00Z"


def test_absent_placeholder_and_directory_read_as_none(settings: Settings) -> None:
    tar = make_tar({"var/lib/sampleapp/big.db": b"partial?"}, dirs=("etc/nginx",))
    baseline = store(settings, tar, (file_entry("/etc/nginx", type_="dir"),),
                     (Placeholder("/var/lib/sampleapp/big.db", 10**9, None),))
    assert baseline.read("/etc/nginx/missing.conf") is None
    assert baseline.read("/var/lib/sampleapp/big.db") is None
    assert baseline.read("/etc/nginx") is None
    assert baseline.placeholders["/var/lib/sampleapp/big.db"].size == 10**9


def test_symlink_member_is_never_followed(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    tar = make_tar({"etc/shadow": b"secret"}, symlinks={"etc/nginx/nginx.conf": "/etc/shadow",
                                                        "etc/nginx/sites-enabled/x": "../sites/x"})
    entries = (file_entry("/etc/nginx/nginx.conf", CONF), file_entry("/etc/nginx/sites-enabled/x",
                                                                     type_="symlink"))
    baseline = store(settings, tar, entries)
    assert baseline.read("/etc/nginx/sites-enabled/x") is None
    with caplog.at_level(logging.WARNING, logger="orchestrator.baseline.store"):
        assert baseline.read("/etc/nginx/nginx.conf") is None
    assert "regular file in the manifest but a symlink in files.tar; refusing it" in caplog.text


def test_hardlink_member_is_refused(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    baseline = store(settings, hardlink_tar(), (file_entry("/etc/nginx/nginx.conf", CONF),))
    with caplog.at_level(logging.WARNING, logger="orchestrator.baseline.store"):
        assert baseline.read("/etc/nginx/nginx.conf") is None
    assert "a hard link in files.tar; refusing it" in caplog.text


def test_corrupt_files_tar_is_detected_on_load(settings: Settings) -> None:
    baseline = store(settings, make_tar({"etc/nginx/nginx.conf": CONF}))
    tar = baseline.tar_path
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"files\.tar has sha256") as caught:
        load_latest_baseline(settings, SLUG)
    assert caught.value.remedy is not None
    assert "vmrepair baseline" in caught.value.remedy


def test_missing_files_tar_is_detected_on_load(settings: Settings) -> None:
    store(settings, make_tar({})).tar_path.unlink()
    with pytest.raises(StateError, match=r"files\.tar unreadable"):
        load_latest_baseline(settings, SLUG)


def test_corrupt_manifest_is_a_state_error(settings: Settings) -> None:
    baseline = store(settings, make_tar({}), (file_entry("/etc/x"),))
    path = baseline.info.directory / "manifest.json"
    data = json.loads(path.read_text())
    data["entries"][0]["mode"] = "rwx"
    path.write_text(json.dumps(data))
    with pytest.raises(StateError, match="is corrupt: manifest entry field 'mode'"):
        load_latest_baseline(settings, SLUG)


@pytest.mark.parametrize(("pointer", "message"), [
    ("not json", "is corrupt"),
    ('{"baseline": "../../etc"}', "names an invalid baseline"),
    ('{"baseline": "20990101T000000Z"}', "missing or incomplete"),
])
def test_bad_latest_pointer_is_a_state_error(settings: Settings, pointer: str, message: str) -> None:
    store(settings, make_tar({}))
    (settings.baselines_dir / SLUG / "latest.json").write_text(pointer)
    with pytest.raises(StateError, match=message):
        load_latest_baseline(settings, SLUG)


def test_a_loaded_baseline_covers_exactly_the_paths_it_watched(settings: Settings) -> None:
    baseline = store(settings, make_tar({"etc/nginx/nginx.conf": CONF}),
                     entries=(file_entry("/etc/nginx/nginx.conf", CONF),))
    watched = {p for comp in WATCH.components for p in comp.all_paths}
    assert "/etc/nginx" in watched
    assert baseline.covers("/etc/nginx/sites-enabled/default")     # watched, whatever the manifest holds
    assert baseline.covers("/etc/nginx//") and not baseline.covers("/etc/nginxfoo")
    assert not baseline.covers("/etc/apache2/apache2.conf")
