"""release and list_quarantined: exact restores, unit state, verification, and every refusal."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from orchestrator.errors import QuarantineError
from orchestrator.quarantine import (
    QuarantineRecord,
    ReleaseResult,
    Status,
    list_quarantined,
    quarantine_component,
    release,
)
from tests.unit.quarantine.target import APP, NGINX, ROOT, WATCH, Target
from tests.unit.repair.fakes import Node

QUARANTINED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
RELEASED_AT = dt.datetime(2026, 1, 2, 4, 0, 0, tzinfo=dt.UTC)
DIRECTORY = f"{ROOT}/nginx/20260102T030405Z"


def isolate(target: Target, moment: dt.datetime = QUARANTINED_AT) -> QuarantineRecord:
    return quarantine_component(target.transport, target.agent, NGINX, "flapping", audit=target.audit,
                                watch=WATCH, now=lambda: moment)


def free(target: Target, name: str = "nginx") -> ReleaseResult:
    return release(target.transport, target.agent, name, audit=target.audit, watch=WATCH,
                   now=lambda: RELEASED_AT, sleep=lambda _s: None)


def test_release_restores_every_file_exactly(target: Target) -> None:
    before = target.snapshot()
    isolate(target)
    assert target.snapshot() != before
    result = free(target)
    assert target.snapshot() == before
    assert sorted(result.restored) == [
        "/etc/nginx/nginx.conf", "/etc/nginx/private/key.pem", "/etc/nginx/sites-available/default",
        "/etc/nginx/sites-enabled/default", "/etc/systemd/system/nginx.service.d/limits.conf"]
    assert result.already_in_place == ()


def test_release_restores_the_units_prior_state_and_verifies(target: Target) -> None:
    isolate(target)
    result = free(target)
    assert target.systemctl_calls("enable", "start")[-2:] == [
        ("systemctl", "enable", "--", "nginx.service"), ("systemctl", "start", "--", "nginx.service")]
    assert target.systemctl_calls("daemon-reload")[-1] == ("systemctl", "daemon-reload")
    assert target.systemd.units["nginx.service"]["ActiveState"] == "active"
    assert result.is_verified is True
    assert result.outcome == "released and verified: its probes pass"
    assert {p.probe for p in result.probes} == {"config:nginx", "unit:nginx.service",
                                               "http:http://127.0.0.1:80/", "dpkg:nginx",
                                               "pkgmeta:nginx", "symlinks:nginx"}


def test_a_unit_that_was_disabled_and_stopped_stays_so(target: Target) -> None:
    target.systemd.units["nginx.service"] = {"LoadState": "loaded", "ActiveState": "inactive",
                                             "SubState": "dead", "UnitFileState": "disabled"}
    isolate(target)
    free(target)
    # Stopped anyway (it could be activating); never disabled, enabled or started.
    assert target.systemctl_calls("enable", "start", "stop", "disable") == [
        ("systemctl", "stop", "--", "nginx.service")]


def test_release_marks_the_manifest_and_logs_and_audits(target: Target) -> None:
    isolate(target)
    free(target)
    manifest = json.loads(target.agent.fs[f"{DIRECTORY}/manifest.json"].data)
    assert (manifest["status"], manifest["released_at"]) == ("released", "2026-01-02T04:00:00Z")
    log = target.agent.fs[f"{ROOT}/QUARANTINE.md"].data.decode()
    assert log.count("## ") == 2
    assert "## 2026-01-02T04:00:00Z: released `nginx`" in log
    assert "- files restored: 5 of 5 (content, mode and owner verified)" in log
    assert "- outcome: released and verified: its probes pass" in log
    record = target.audit.records[-1]
    assert (record["event"], record["status"], record["details"]["verified"]) == (
        "quarantine_release", "released", True)
    assert record["details"]["reason"] == "flapping"


def test_unhealthy_release_is_reported_not_hidden(target: Target) -> None:
    isolate(target)
    target.vm.answers["curl",] = (7, b"000", b"curl: (7) Failed to connect\n")
    result = free(target)
    assert result.is_verified is False
    assert result.outcome == ("released, but not healthy: http://127.0.0.1:80/: no HTTP answer "
                              "(curl exit 7)")
    assert target.snapshot()["/etc/nginx/nginx.conf"][0] == "file"


def test_refuses_when_a_destination_now_holds_other_content(target: Target) -> None:
    isolate(target)
    target.agent.file("/etc/nginx/nginx.conf", b"events {}  # rewritten by the operator\n")
    before = dict(target.agent.fs)
    with pytest.raises(QuarantineError) as err:
        free(target)
    assert err.value.message == ("cannot release nginx: /etc/nginx/nginx.conf exist(s) again with "
                                 "other content")
    assert err.value.remedy == (
        "move them away (or delete them) and run `vmrepair quarantine release nginx` again; nothing "
        f"was changed (the quarantined copies are in {DIRECTORY})")
    assert dict(target.agent.fs) == before
    assert target.systemctl_calls("start", "enable") == []


def test_a_destination_with_identical_content_is_accepted(target: Target) -> None:
    before = target.snapshot()
    isolate(target)
    # As after a crash between moving this file back and finishing the release.
    target.agent.move_file(f"{DIRECTORY}/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf")
    result = free(target)
    assert result.already_in_place == ("/etc/nginx/nginx.conf",)
    assert len(result.restored) == 4
    assert target.snapshot() == before


def test_refuses_when_a_quarantined_copy_was_altered(target: Target) -> None:
    isolate(target)
    target.agent.fs[f"{DIRECTORY}/etc/nginx/private/key.pem"].mode = 0o644
    with pytest.raises(QuarantineError) as err:
        free(target)
    assert err.value.message == (
        f"cannot release nginx: the quarantined copies of /etc/nginx/private/key.pem are gone from "
        f"{DIRECTORY} or no longer match the manifest (content, mode or owner)")
    assert "/etc/nginx/nginx.conf" not in target.agent.fs


def test_refuses_a_name_that_is_not_quarantined(target: Target) -> None:
    with pytest.raises(QuarantineError) as err:
        free(target, "sampleapp")
    assert err.value.message == "sampleapp is not quarantined on fake"
    assert err.value.remedy == "`vmrepair quarantine list` shows what is"


def test_refuses_a_name_that_is_not_a_component_name(target: Target) -> None:
    with pytest.raises(QuarantineError) as err:
        free(target, "../../etc")
    assert err.value.message == "'../../etc' is not a component name"
    assert target.agent.calls == []


def test_missing_directory_is_recreated_with_its_recorded_mode(target: Target) -> None:
    isolate(target)
    del target.agent.fs["/etc/nginx/private"]
    free(target)
    assert ("install", "-d", "-m", "750", "-o", "0", "-g", "33", "--", "/etc/nginx/private") in \
        target.transport.argvs
    assert target.agent.fs["/etc/nginx/private"].mode == 0o750
    assert target.agent.fs["/etc/nginx/private/key.pem"].data == b"secret"


def test_release_after_an_interrupted_quarantine_puts_back_what_moved(target: Target) -> None:
    before = target.snapshot()
    record = isolate(target)
    # Rewind to the moment after the first move: the manifest says quarantining, one file moved.
    for path in record.moved[1:]:
        target.agent.move_file(record.stored_path(path.path), path.path)
    manifest = json.loads(target.agent.fs[record.manifest_path].data)
    manifest["status"] = "quarantining"
    target.agent.fs[record.manifest_path].data = json.dumps(manifest).encode()
    assert [r.status for r in list_quarantined(target.agent)] == [Status.QUARANTINING]
    result = free(target)
    assert result.restored == (record.moved[0].path,)
    assert target.snapshot() == before


def test_list_shows_quarantines_in_force_and_history_on_request(target: Target) -> None:
    isolate(target)
    free(target)
    later = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    isolate(target, later)
    records = list_quarantined(target.agent)
    assert [(r.component, r.directory, r.status) for r in records] == [
        ("nginx", f"{ROOT}/nginx/20260103T000000Z", Status.QUARANTINED)]
    history = list_quarantined(target.agent, include_released=True)
    assert [r.status for r in history] == [Status.RELEASED, Status.QUARANTINED]


def test_list_ignores_what_is_not_a_component_quarantine(target: Target) -> None:
    # A repair step's single-file quarantine lives at <root>/<stamp>/<path>.
    target.agent.file(f"{ROOT}/20260101T000000Z-abc123/etc/x/manifest.json", b"not ours")
    target.agent.file(f"{ROOT}/QUARANTINE.md", b"# log\n")
    assert list_quarantined(target.agent) == []


def test_list_refuses_a_corrupt_manifest_naming_it(target: Target) -> None:
    path = f"{ROOT}/sampleapp/20260101T000000Z/manifest.json"
    target.agent.put(path, Node("file", b'{"format": 1, "component": "sampleapp"}'))
    with pytest.raises(QuarantineError) as err:
        list_quarantined(target.agent)
    assert err.value.message.startswith(f"quarantine manifest {path} is unusable: directory: Field "
                                        "required")


def test_list_refuses_a_manifest_pointing_elsewhere(target: Target) -> None:
    record = isolate(target)
    manifest = json.loads(target.agent.fs[record.manifest_path].data)
    manifest["directory"] = "/etc"
    target.agent.fs[record.manifest_path].data = json.dumps(manifest).encode()
    with pytest.raises(QuarantineError, match=r"is unusable: it names another directory \(/etc\)"):
        list_quarantined(target.agent)


def test_other_components_keep_running_through_quarantine_and_release(target: Target) -> None:
    target.systemd.units["sampleapp.service"] = {"LoadState": "loaded", "ActiveState": "active",
                                                 "SubState": "running", "UnitFileState": "enabled"}
    isolate(target)
    free(target)
    assert target.systemd.units["sampleapp.service"]["ActiveState"] == "active"
    assert not [a for a in target.transport.argvs if a[-1] == APP.units[0] and a[1] != "show"]


def test_release_asks_for_the_quarantined_directories_once(target: Target) -> None:
    record = isolate(target)
    dirs = ",".join(p.path for p in record.paths if p.kind == "dir")
    target.agent.calls.clear()
    free(target)
    assert target.agent.calls.count(("manifest", dirs)) == 1
