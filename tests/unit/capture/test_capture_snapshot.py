"""Capture: which paths are packed, and what capture_components downloads and records in the session."""

from __future__ import annotations

import json
import stat
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from orchestrator.agent.api import Placeholder
from orchestrator.capture.snapshot import Capture, capture_components, capture_paths, meta_paths
from orchestrator.errors import AgentError, TransportError
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.model import Component, IssueKind
from orchestrator.session.store import Session, new_session
from orchestrator.systemd import MAX_VALUE
from orchestrator.transport.fake import FakeTransport
from tests.unit import fake_agent
from tests.unit.detect.fakes import FakeAgent, file_entry, make_tar, usage

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                  unit_paths=("/etc/systemd/system/nginx.service.d",), packages=("nginx", "nginx-common"),
                  log_paths=("/var/log/nginx",))
APP = Component("sampleapp", units=("sampleapp.service",), config_paths=("/etc/default/sampleapp",),
                data_paths=("/var/lib/sampleapp",), log_paths=("/var/log/sampleapp", "/var/log/nginx"))
# Shares a config path with NGINX: it must be captured once.
EXTRA = Component("nginx-extra", config_paths=("/etc/nginx", "/etc/nginx-extra"))

MAX_FILE = 1024 * 1024
TAR = make_tar({"etc/nginx/nginx.conf": b"events {}\n"})
BIG = Placeholder("/var/log/nginx/access.log", 9_000_000_000, "a" * 64, head=b"\x1b[2Jhead\n",
                  tail=b"tail\x00")


# -- capture_paths --------------------------------------------------------------------------------

def test_config_unit_and_data_paths_without_logs_for_other_kinds() -> None:
    assert capture_paths([NGINX, APP], {IssueKind.CONFIG_INVALID, IssueKind.UNIT_FAILED}) == [
        "/etc/nginx", "/etc/systemd/system/nginx.service.d", "/etc/default/sampleapp", "/var/lib/sampleapp"]


@pytest.mark.parametrize("kind", [IssueKind.DISK_FULL, IssueKind.INODES_FULL])
def test_disk_issues_add_log_paths_once_in_order(kind: IssueKind) -> None:
    assert capture_paths([NGINX, APP], {kind, IssueKind.HTTP_DOWN}) == [
        "/etc/nginx", "/etc/systemd/system/nginx.service.d", "/var/log/nginx", "/etc/default/sampleapp",
        "/var/lib/sampleapp", "/var/log/sampleapp"]


def test_shared_paths_are_captured_once_where_first_seen() -> None:
    assert capture_paths([EXTRA, NGINX], set()) == [
        "/etc/nginx", "/etc/nginx-extra", "/etc/systemd/system/nginx.service.d"]


def test_no_components_no_paths() -> None:
    assert capture_paths([], {IssueKind.DISK_FULL}) == []


# -- capture_components ---------------------------------------------------------------------------

def target(dpkg: bytes = b"nginx\t1.22.1-9\n", show: bytes = b"ActiveState=failed\nSubState=failed\n"
           b"UnitFileState=enabled\n") -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "dpkg-query":
            return 1, dpkg, b"dpkg-query: no packages found matching nginx-common\n"
        if argv[:2] == ("systemctl", "show"):
            return 0, show, b""
        raise AssertionError(f"unexpected command {argv}")

    return FakeTransport(handler, host="target")


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return new_session(tmp_path / "sessions", "vm:patient")


def run_capture(session: Session, transport: FakeTransport, agent: FakeAgent, components: list[Component],
            kinds: set[IssueKind]) -> Capture:
    # FakeAgent implements the four AgentApi methods capture uses (pack, fetch, cleanup, disk_usage).
    return capture_components(session, transport, agent, components, kinds,  # type: ignore[arg-type]
                              max_file_bytes=MAX_FILE)


def stored(session: Session) -> dict[str, object]:
    data: dict[str, object] = json.loads((session.dir / "capture.json").read_text())
    return data


def test_capture_downloads_the_archive_and_records_everything(session: Session) -> None:
    entry = file_entry("/etc/nginx/nginx.conf", b"events {}\n")
    agent = FakeAgent(tar=TAR, entries=(entry,), missing_paths=("/etc/systemd/system/nginx.service.d",),
                      placeholders=(BIG,), disk={"/": usage(97.0)})
    transport = target()
    capture = run_capture(session, transport, agent, [NGINX], {IssueKind.DISK_FULL})

    paths = ("/etc/nginx", "/etc/systemd/system/nginx.service.d", "/var/log/nginx")
    assert [name for name, _ in agent.calls] == ["pack", "fetch", "cleanup", "disk_usage"]
    assert agent.calls[0] == ("pack", (paths, MAX_FILE))
    assert agent.calls[1] == ("fetch", "/run/vmrepair-agent/pack.tar")
    assert transport.argvs == [
        ("dpkg-query", "-W", "-f", "${Package}\t${Version}\n", "nginx", "nginx-common"),
        ("systemctl", "show", "--property=LoadState,ActiveState,SubState,UnitFileState", "--",
         "nginx.service"),
    ]

    assert capture.tar == session.dir / "capture" / "files.tar"
    assert capture.tar.read_bytes() == TAR
    assert stat.S_IMODE(capture.tar.stat().st_mode) == 0o600
    assert stat.S_IMODE(capture.tar.parent.stat().st_mode) == 0o700
    assert capture.paths == paths
    assert capture.packages == {"nginx": "1.22.1-9", "nginx-common": None}
    assert capture.units == {"nginx.service": {"ActiveState": "failed", "SubState": "failed",
                                               "UnitFileState": "enabled"}}
    assert capture.disk == usage(97.0)
    assert capture.placeholder_paths == {"/var/log/nginx/access.log"}

    data = stored(session)
    assert data["paths"] == list(paths)
    assert data["missing"] == ["/etc/systemd/system/nginx.service.d"]
    assert data["files"] == [{**vars(entry)}]
    assert data["placeholders"] == [{"path": BIG.path, "size": BIG.size, "sha256": BIG.sha256}]
    # Placeholder samples come from the target: escaped before they are stored.
    assert data["placeholder_samples"] == {BIG.path: {"head": "\\x1b[2Jhead\n", "tail": "tail\\x00"}}
    assert data["disk"] == vars(usage(97.0))
    (event,) = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]
    assert {key: event[key] for key in ("stage", "event", "files", "placeholders", "tar_bytes")} == {
        "stage": "capture", "event": "captured", "files": 1, "placeholders": 1, "tar_bytes": len(TAR)}


def test_without_disk_issues_or_packages_nothing_extra_is_asked(session: Session) -> None:
    agent = FakeAgent(tar=TAR)
    transport = target()
    component = Component("sampleapp", units=("sampleapp.service",), config_paths=("/etc/default/sampleapp",))
    capture = run_capture(session, transport, agent, [component], {IssueKind.UNIT_FAILED})
    assert capture.disk is None and capture.packages == {}
    assert [name for name, _ in agent.calls] == ["pack", "fetch", "cleanup"]
    assert [argv[0] for argv in transport.argvs] == ["systemctl"]
    assert stored(session)["disk"] is None


def test_untrusted_unit_and_package_text_is_escaped_and_capped(session: Session) -> None:
    show = b"ActiveState=active\x1b[2J\nnot a property line\nSubState=" + b"r" * 1000 + b"\n"
    transport = target(dpkg=b"nginx\t1.0\x07\n", show=show)
    capture = run_capture(session, transport, FakeAgent(tar=TAR), [NGINX], set())
    unit = capture.units["nginx.service"]
    assert set(unit) == {"ActiveState", "SubState"}
    assert unit["ActiveState"] == "active\\x1b[2J"
    # The one systemctl-show parser caps a value at MAX_VALUE characters, its note included.
    assert len(unit["SubState"]) <= MAX_VALUE
    assert unit["SubState"].startswith("r" * 100) and unit["SubState"].endswith("more characters not kept]")
    assert capture.packages["nginx"] == "1.0\\x07"


def test_a_failed_download_still_cleans_up_the_target(session: Session) -> None:
    agent = FakeAgent(errors={"fetch": AgentError("target: archive vanished", host="target")})
    with pytest.raises(AgentError, match="archive vanished"):
        run_capture(session, target(), agent, [NGINX], set())
    assert [name for name, _ in agent.calls] == ["pack", "fetch", "cleanup"]
    assert not (session.dir / "capture.json").exists()


def test_a_failed_cleanup_does_not_lose_the_capture(session: Session) -> None:
    agent = FakeAgent(tar=TAR, errors={"cleanup": TransportError("target: connection reset", host="target")})
    capture = run_capture(session, target(), agent, [NGINX], set())
    assert capture.tar.read_bytes() == TAR
    assert (session.dir / "capture.json").exists()


def test_the_targets_facts_are_recorded_with_the_capture_once_read(session: Session) -> None:
    """The pipeline reads the facts while the files are packed: a Future is awaited, then recorded."""
    facts = TargetFacts(OsRelease("debian", "12", "bookworm"), "amd64",
                        packages=(Package("nginx-common", "1.22.1-9", "all", "ii"),))
    pending: Future[TargetFacts] = Future()
    pending.set_result(facts)
    agent = FakeAgent(tar=TAR, entries=(file_entry("/etc/nginx/nginx.conf", b"x"),))
    capture = capture_components(session, target(), agent, [NGINX], set(),  # type: ignore[arg-type]
                                 max_file_bytes=MAX_FILE, facts=pending)
    assert capture.facts == facts
    recorded = json.loads((session.dir / "capture.json").read_text())["facts"]
    assert recorded["os"]["codename"] == "bookworm" and recorded["packages"][0]["name"] == "nginx-common"


def test_extra_paths_are_captured_after_the_components_own(session: Session) -> None:
    agent = FakeAgent(tar=TAR, entries=(file_entry("/opt/app/main.py", b"x"),))
    capture = capture_components(session, target(), agent, [NGINX], set(),  # type: ignore[arg-type]
                                 max_file_bytes=MAX_FILE, extra_paths=["/opt/app", "/etc/nginx"])
    assert capture.paths == ("/etc/nginx", "/etc/systemd/system/nginx.service.d", "/opt/app")


def test_package_versions_come_from_the_facts_when_they_were_read(session: Session) -> None:
    """No second dpkg-query on the target: the facts hold the whole package database."""
    facts = TargetFacts(OsRelease("debian", "12"), "amd64",
                        packages=(Package("nginx", "1.22.1-9", "amd64", "ii"),))
    transport = target()
    agent = FakeAgent(tar=TAR, entries=(file_entry("/etc/nginx/nginx.conf", b"x"),))
    capture = capture_components(session, transport, agent, [NGINX], set(),  # type: ignore[arg-type]
                                 max_file_bytes=MAX_FILE, facts=facts)
    assert capture.packages == {"nginx": "1.22.1-9", "nginx-common": None}
    assert not any(a[0] == "dpkg-query" for a in transport.argvs)


# -- what generated strategies change is captured ------------------------------------------------

STATEFUL = Component("db", units=("db.service",), config_paths=("/etc/db",),
                     writable_paths=("/var/lib/db", "/var/lib/gone"))


def test_unit_state_issues_capture_the_mask_and_wants_links() -> None:
    assert capture_paths([STATEFUL], {IssueKind.UNIT_INACTIVE}) == [
        "/etc/db", "/etc/systemd/system/db.service",
        "/etc/systemd/system/multi-user.target.wants/db.service"]
    assert capture_paths([STATEFUL], {IssueKind.UNIT_FAILED}) == ["/etc/db"]


def test_state_issues_capture_writable_dirs_by_their_own_entry_only(session: Session) -> None:
    agent = FakeAgent(tar=TAR, existing=set())
    agent.put("/var/lib/db/ibdata1", fake_agent.file_node(b"gigabytes"))
    kinds = {IssueKind.PATH_MISSING}
    capture = capture_components(session, target(), agent, [STATEFUL], kinds,  # type: ignore[arg-type]
                                 max_file_bytes=MAX_FILE, subjects=["/var/lib/gone"])
    assert capture.meta_paths == ("/var/lib/gone", "/var/lib/db")
    assert "/var/lib/db" not in capture.paths                      # never packed (pack walks)
    listed = capture.manifest.by_path()
    assert listed["/var/lib/db"].type == "dir" and "/var/lib/db/ibdata1" not in listed
    assert "/var/lib/gone" in capture.manifest.missing
    assert ("manifest", ("/var/lib/gone", "/var/lib/db")) in agent.calls
    recorded = json.loads((session.dir / "capture.json").read_text())
    assert recorded["meta_paths"] == ["/var/lib/gone", "/var/lib/db"]


def test_a_system_directory_is_captured_by_its_own_entry_never_walked() -> None:
    from orchestrator.pipeline.triage import system_path_component

    host = system_path_component("/tmp")
    assert capture_paths([host], {IssueKind.PERMISSIONS}) == []
    assert meta_paths([host], {IssueKind.PERMISSIONS}, ["/tmp"]) == ["/tmp"]


def test_capturing_a_system_directory_reads_no_file_below_it(session: Session) -> None:
    from orchestrator.pipeline.triage import system_path_component

    agent = FakeAgent(tar=TAR, existing=set())
    agent.put("/tmp/secret", fake_agent.file_node(b"someone else's"))
    capture = capture_components(session, target(), agent, [system_path_component("/tmp")],  # type: ignore[arg-type]
                                 {IssueKind.PERMISSIONS}, max_file_bytes=MAX_FILE, subjects=["/tmp"])
    assert capture.meta_paths == ("/tmp",) and capture.paths == ()
    listed = capture.manifest.by_path()
    assert listed["/tmp"].type == "dir" and "/tmp/secret" not in listed
    assert capture.units == {} and capture.packages == {}


def test_capturing_a_shadow_mode_issue_carries_no_byte_of_the_file(session: Session) -> None:
    """/etc/shadow 0644: the capture holds its own entry (type, mode, owner, digest) and nothing of
    what it says: not packed, never read, not in the tar nor in the session's capture.json."""
    from orchestrator.pipeline.triage import system_path_component

    secret = b"root:$y$j9T$salt$EVERYPASSWORDHASH:19700:0:99999:7:::\n"
    agent = fake_agent.FakeAgent(files={"/etc/shadow": fake_agent.file_node(secret, 0o644, gid=42)},
                                 names={**fake_agent.NAMES, 42: "shadow"})
    host = system_path_component("/etc/shadow")
    capture = capture_components(session, target(), agent, [host], {IssueKind.PERMISSIONS},
                                 max_file_bytes=MAX_FILE, subjects=["/etc/shadow"])
    assert capture.paths == () and capture.meta_paths == ("/etc/shadow",)
    assert ("pack", ((), MAX_FILE)) in agent.calls          # asked to pack nothing at all
    assert ("manifest", ("/etc/shadow",)) in agent.calls    # the file's own entry, non-recursive
    assert not any(method == "read_file" for method, _ in agent.calls)
    entry = capture.manifest.by_path()["/etc/shadow"]
    assert (entry.type, entry.mode, entry.owner, entry.group) == ("file", 0o644, "root", "shadow")
    # The digest stays: the fix package's precondition (the target's file is still the one captured).
    assert entry.sha256 == fake_agent.sha(secret)
    assert capture.placeholders == ()
    assert secret not in capture.tar.read_bytes() and b"EVERYPASSWORDHASH" not in capture.tar.read_bytes()
    for written in session.dir.rglob("*"):
        if written.is_file():
            assert b"EVERYPASSWORDHASH" not in written.read_bytes(), written


def test_a_components_own_log_directory_is_a_meta_path_but_var_log_is_not() -> None:
    nginx = Component("nginx", units=("nginx.service",), log_paths=("/var/log/nginx",))
    rsyslog = Component("rsyslog", units=("rsyslog.service",), log_paths=("/var/log",))
    assert meta_paths([nginx, rsyslog], {IssueKind.UNIT_FAILED}) == ["/var/log/nginx"]


def test_packaged_files_missing_on_the_target_are_listed_for_the_vm_to_share() -> None:
    from orchestrator.capture.snapshot import packaged_missing
    from orchestrator.transport.fake import FakeTransport

    verify = (b"missing     /usr/sbin/nginx\n"
              b"missing   c /etc/nginx/mime.types\n"          # a conffile: captured with the config
              b"??5??????   /usr/share/nginx/html/index.html\n"  # changed, not missing
              b"missing     /usr/sbin/../../etc/shadow\n")     # not canonical: never trusted

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        assert argv == ("dpkg", "--verify", "--", "nginx", "nginx-common")
        return 2, verify, b""

    transport = FakeTransport(handler, host="target")
    found = packaged_missing(transport, ["nginx", "nginx-common"], {IssueKind.UNIT_FAILED})
    assert found == ("/usr/sbin/nginx",)
    # Issues a missing packaged file cannot cause ask nothing.
    assert packaged_missing(transport, ["nginx"], {IssueKind.DISK_FULL}) == ()
    assert transport.argvs == [("dpkg", "--verify", "--", "nginx", "nginx-common")]


def test_the_detection_s_verify_answer_is_asked_instead_of_running_dpkg_again() -> None:
    """The capture asks the run's Detector (which reuses its answer while nothing changed)."""
    from orchestrator.capture.snapshot import packaged_missing
    from orchestrator.transport.base import CommandResult
    from orchestrator.transport.fake import FakeTransport

    asked: list[tuple[str, ...]] = []

    def verify(names: Sequence[str]) -> CommandResult | None:
        asked.append(tuple(names))
        return CommandResult(("dpkg", "--verify"), 1, b"missing     /usr/sbin/nginx\n", b"")

    transport = FakeTransport(host="target")
    assert packaged_missing(transport, ["nginx", "nginx-common"], {IssueKind.UNIT_FAILED},
                            verify=verify) == ("/usr/sbin/nginx",)
    assert asked == [("nginx", "nginx-common")] and transport.argvs == []
    assert packaged_missing(transport, ["nginx"], {IssueKind.UNIT_FAILED}, verify=lambda _n: None) == ()


def test_ignored_paths_below_a_captured_directory_are_left_out_and_recorded(session: Session) -> None:
    """``watch.ignore_paths`` inside a captured directory: excluded from the pack, recorded with the
    capture (every manifest of the captured paths in the VM leaves them out too); an entry outside
    every captured path is not the capture's business."""
    agent = FakeAgent(tar=TAR)
    app = Component("app", units=("app.service",), config_paths=("/etc/app",))
    capture = capture_components(session, target(), agent, [app],  # type: ignore[arg-type]
                                 {IssueKind.UNIT_FAILED}, max_file_bytes=MAX_FILE,
                                 ignored=("/var/cache/other", "/etc/app/cache", "/etc/app2"))
    assert capture.excluded == ("/etc/app/cache",)
    assert stored(session)["excluded"] == ["/etc/app/cache"]
