"""record_baseline: what is written, in which order, atomic `latest`, retention, interrupted runs."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.agent.api import Placeholder
from orchestrator.baseline import layout, load_latest_baseline, record_baseline
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.errors import ConfigError, ConnectError, FileTransferError
from orchestrator.model import Component
from tests.unit.detect.fakes import FakeAgent, FakeHost, file_entry, make_tar
from tests.unit.template_watch import template_watch

SLUG = "vm_web"
WATCH = template_watch()
NGINX_CONF = b"events {}\nhttp { server { listen 80; } }\n"


def clock(start: dt.datetime = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)) -> Callable[[], dt.datetime]:
    """A clock that moves one minute per call, so every baseline gets its own stamp."""
    ticks: Iterator[int] = iter(range(10_000))
    return lambda: start + dt.timedelta(minutes=next(ticks))


def agent(errors: dict[str, Exception] | None = None) -> FakeAgent:
    return FakeAgent(
        tar=make_tar({"etc/nginx/nginx.conf": NGINX_CONF}, dirs=("etc/nginx",)),
        entries=(file_entry("/etc/nginx", type_="dir"), file_entry("/etc/nginx/nginx.conf", NGINX_CONF)),
        missing_paths=("/etc/default/sampleapp",),
        placeholders=(Placeholder("/var/lib/sampleapp/big.db", 10**9, "ab" * 32, b"head", b"tail"),),
        errors=errors or {},
    )


class LostWhileQueryingUnits(FakeHost):
    """The connection dies after files.tar, manifest.json and packages.json were written."""

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "systemctl":
            raise ConnectError("connection lost", host="fake")
        return super().__call__(argv, stdin)


def record(settings: Settings, *, host: FakeHost | None = None, fake: FakeAgent | None = None,
           watch: WatchConfig = WATCH, now: Callable[[], dt.datetime] | None = None):
    return record_baseline(settings, SLUG, (host or FakeHost(packages={"nginx": "1.22.1-9"})).transport(),
                           fake or agent(), watch, clock=now or clock())


def test_records_every_file_privately(settings: Settings) -> None:
    fake = agent()
    info = record(settings, fake=fake)
    directory = settings.baselines_dir / SLUG / "20260101T120000Z"
    assert info.directory == directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "baseline.json", "components.json", "files.tar", "manifest.json", "packages.json", "units.json"]
    for path in (settings.baselines_dir, settings.baselines_dir / SLUG, directory):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [(pack_paths, max_bytes)] = [arg for name, arg in fake.calls if name == "pack"]
    assert max_bytes == settings.repair.max_capture_file_bytes
    assert "/etc/nginx" in pack_paths
    assert "/var/lib/sampleapp" in pack_paths
    assert ("fetch", "/run/vmrepair-agent/pack.tar") in fake.calls


def test_json_files_hold_manifest_packages_and_units(settings: Settings) -> None:
    info = record(settings)
    manifest = json.loads((info.directory / "manifest.json").read_text())
    assert [e["path"] for e in manifest["entries"]] == ["/etc/nginx", "/etc/nginx/nginx.conf"]
    assert manifest["missing"] == ["/etc/default/sampleapp"]
    assert manifest["placeholders"] == [{"path": "/var/lib/sampleapp/big.db", "size": 10**9,
                                         "sha256": "ab" * 32}]
    packages = json.loads((info.directory / "packages.json").read_text())
    assert packages == {"dpkg": True, "packages": {
        "cron": None, "nginx": "1.22.1-9", "nginx-common": None, "openssh-server": None, "rsyslog": None}}
    units = json.loads((info.directory / "units.json").read_text())["units"]
    assert units["nginx.service"] == {"component": "nginx", "ActiveState": "active",
                                      "UnitFileState": "enabled", "unavailable": None}
    data = json.loads((info.directory / "baseline.json").read_text())
    assert data["target"] == SLUG
    assert data["created_at"] == "2026-01-01T12:00:00Z"
    assert data["counts"] == {"paths": len(manifest["paths"]), "entries": 2, "missing": 1,
                              "placeholders": 1, "packages": 5, "units": 6}   # 5 units, syslog.socket
    assert data["files_tar"]["sha256"] == layout.sha256_file(info.directory / "files.tar")
    assert json.loads((settings.baselines_dir / SLUG / "latest.json").read_text()) == {
        "baseline": info.name}


def test_baseline_json_is_written_last_then_latest(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    original = layout.write_json

    def spy(path: Path, data: object) -> None:
        # files.tar must already be complete whenever a JSON file is written.
        assert (path.parent / "files.tar").exists() or path.name == "latest.json"
        written.append(path.name)
        original(path, data)

    monkeypatch.setattr(layout, "write_json", spy)
    record(settings)
    assert written == ["manifest.json", "packages.json", "units.json", "components.json", "baseline.json",
                       "latest.json"]


def test_invalid_package_names_are_never_passed_to_dpkg(settings: Settings) -> None:
    transport = FakeHost(packages={"nginx": "1.22.1-9"}).transport()
    watch = WatchConfig((Component("web", packages=("nginx", "-evil", "Bad_Name")),), ())
    info = record_baseline(settings, SLUG, transport, agent(), watch, clock=clock())
    assert [argv[4:] for argv in transport.argvs if argv[0] == "dpkg-query"] == [("nginx",)]
    packages = json.loads((info.directory / "packages.json").read_text())["packages"]
    assert packages == {"-evil": None, "Bad_Name": None, "nginx": "1.22.1-9"}


def test_dpkg_query_is_called_with_the_shell_escaped_format(settings: Settings) -> None:
    host = FakeHost()
    transport = host.transport()
    record_baseline(settings, SLUG, transport, agent(), WATCH, clock=clock())
    dpkg = [argv for argv in transport.argvs if argv[0] == "dpkg-query"]
    assert dpkg == [("dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n",
                     "cron", "nginx", "nginx-common", "openssh-server", "rsyslog")]


def test_no_dpkg_and_no_systemd_are_recorded_not_fatal(settings: Settings) -> None:
    host = FakeHost(has_systemd=False, missing={"dpkg-query"})
    info = record(settings, host=host)
    packages = json.loads((info.directory / "packages.json").read_text())
    assert packages["dpkg"] is False
    assert set(packages["packages"].values()) == {None}
    unit = json.loads((info.directory / "units.json").read_text())["units"]["ssh.service"]
    assert unit["ActiveState"] is None
    assert "does not run systemd" in unit["unavailable"]


@pytest.mark.parametrize("failure", ["fetch", "units"])
def test_interrupted_record_keeps_latest_at_the_previous_one(settings: Settings, failure: str) -> None:
    now = clock()
    first = record(settings, now=now)
    fake = agent(errors={"fetch": FileTransferError("connection lost")}) if failure == "fetch" else agent()

    host = LostWhileQueryingUnits() if failure == "units" else FakeHost()
    with pytest.raises((FileTransferError, ConnectError)):
        record(settings, host=host, fake=fake, now=now)
    assert [d.name for d in layout.list_baselines(settings.baselines_dir / SLUG)] == [first.name]
    loaded = load_latest_baseline(settings, SLUG)
    assert loaded is not None
    assert loaded.info.name == first.name


def test_crash_leftover_is_ignored_then_pruned(settings: Settings) -> None:
    now = clock()
    first = record(settings, now=now)
    # A recording killed before baseline.json: a newer directory without it.
    leftover = settings.baselines_dir / SLUG / "20260101T120100Z"
    leftover.mkdir(mode=0o700)
    (leftover / "files.tar").write_bytes(b"partial")
    loaded = load_latest_baseline(settings, SLUG)
    assert loaded is not None
    assert loaded.info.name == first.name
    second = record(settings, now=now)
    assert second.name == "20260101T120100Z-1"  # the leftover took the stamp; it is older
    assert not leftover.exists()


def test_keeps_the_five_newest(settings: Settings) -> None:
    now = clock()
    names = [record(settings, now=now).name for _ in range(7)]
    remaining = [d.name for d in layout.list_baselines(settings.baselines_dir / SLUG)]
    assert remaining == names[2:]
    loaded = load_latest_baseline(settings, SLUG)
    assert loaded is not None
    assert loaded.info.name == names[-1]


def test_same_second_baselines_get_distinct_sorted_names(settings: Settings) -> None:
    fixed = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    names = [record(settings, now=lambda: fixed).name for _ in range(3)]
    assert names == ["20260101T120000Z", "20260101T120000Z-1", "20260101T120000Z-2"]
    loaded = load_latest_baseline(settings, SLUG)
    assert loaded is not None
    assert loaded.info.name == names[-1]


@pytest.mark.parametrize("slug", ["..", "a/b", "", "-x", "a\0b"])
def test_unsafe_slug_is_refused(settings: Settings, slug: str) -> None:
    with pytest.raises(ConfigError, match="invalid target slug"):
        record_baseline(settings, slug, FakeHost().transport(), agent(), WATCH)
