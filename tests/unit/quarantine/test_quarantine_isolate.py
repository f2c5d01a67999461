"""quarantine_component: what moves where, the manifest, the log, the audit, and every refusal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from orchestrator.errors import AgentError, QuarantineError
from orchestrator.model import Component
from orchestrator.quarantine import Status, quarantine_component
from tests.unit.quarantine.target import APP, NGINX, ROOT, WATCH, Target

MOMENT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
DIRECTORY = f"{ROOT}/nginx/20260102T030405Z"


def isolate(target: Target, component: Component = NGINX, reason: str = "flapping") -> object:
    return quarantine_component(target.transport, target.agent, component, reason, audit=target.audit,
                                watch=WATCH, now=lambda: MOMENT)


def test_moves_config_and_unit_files_preserving_paths(target: Target) -> None:
    conf = target.agent.fs["/etc/nginx/nginx.conf"].data
    record = isolate(target)
    fs = target.agent.fs
    assert "/etc/nginx/nginx.conf" not in fs
    assert fs[f"{DIRECTORY}/etc/nginx/nginx.conf"].data == conf
    assert fs[f"{DIRECTORY}/etc/nginx/private/key.pem"].mode == 0o600
    assert fs[f"{DIRECTORY}/etc/nginx/sites-enabled/default"].link == "../sites-available/default"
    assert f"{DIRECTORY}/etc/systemd/system/nginx.service.d/limits.conf" in fs
    # Directories stay (empty); the other component's files are untouched.
    assert fs["/etc/nginx/private"].type == "dir"
    assert "/etc/default/sampleapp" in fs
    assert record.status is Status.QUARANTINED  # type: ignore[attr-defined]


def test_stops_and_disables_only_its_own_units(target: Target) -> None:
    isolate(target)
    assert target.systemctl_calls("stop", "disable", "start", "restart") == [
        ("systemctl", "stop", "--", "nginx.service"), ("systemctl", "disable", "--", "nginx.service")]
    assert target.systemctl_calls("daemon-reload") == [("systemctl", "daemon-reload")]
    assert target.systemd.units["nginx.service"]["ActiveState"] == "inactive"
    assert "sampleapp.service" not in target.systemd.units


def test_manifest_records_every_path_and_the_prior_unit_state(target: Target) -> None:
    isolate(target)
    manifest = json.loads(target.agent.fs[f"{DIRECTORY}/manifest.json"].data)
    assert target.agent.fs[f"{DIRECTORY}/manifest.json"].mode == 0o600
    assert (manifest["status"], manifest["reason"], manifest["component"]) == (
        "quarantined", "flapping", "nginx")
    assert manifest["quarantined_at"] == "2026-01-02T03:04:05Z"
    assert manifest["units"] == [{"unit": "nginx.service", "load_state": "loaded",
                                  "active_state": "active", "unit_file_state": "enabled"}]
    paths = {p["path"]: p for p in manifest["paths"]}
    assert paths["/etc/nginx/sites-available/default"] == {
        "path": "/etc/nginx/sites-available/default", "kind": "file", "mode": 0o640, "uid": 0,
        "gid": 33, "sha256": hashlib.sha256(b"server { listen 80; }\n").hexdigest(), "link": None}
    assert paths["/etc/nginx/sites-enabled/default"]["kind"] == "symlink"
    assert paths["/etc/nginx/sites-enabled/default"]["link"] == "../sites-available/default"
    assert paths["/etc/nginx/private"]["kind"] == "dir"
    assert paths["/etc/nginx/private"]["mode"] == 0o750


def test_log_and_audit_record_the_quarantine(target: Target) -> None:
    isolate(target, reason="restarts did not help # not a heading\n## nor this")
    log = target.agent.fs[f"{ROOT}/QUARANTINE.md"].data.decode()
    assert log.startswith("# vmrepair quarantine log\n")
    assert "## 2026-01-02T03:04:05Z: quarantined `nginx`" in log
    assert "- reason: restarts did not help # not a heading ## nor this" in log
    assert "\n## nor this" not in log
    assert "- files moved: 5" in log
    assert "`vmrepair quarantine release nginx`" in log
    (record,) = target.audit.records
    assert (record["event"], record["component"], record["status"], record["durable"]) == (
        "quarantine", "nginx", "quarantined", True)
    assert record["details"]["directory"] == DIRECTORY
    assert record["details"]["units"] == ["nginx.service"]


def test_refuses_what_is_already_quarantined(target: Target) -> None:
    isolate(target)
    with pytest.raises(QuarantineError) as err:
        isolate(target)
    assert err.value.message == (f"nginx is already quarantined on fake (since "
                                 f"2026-01-02T03:04:05Z, in {DIRECTORY})")
    assert err.value.remedy == "release it first: vmrepair quarantine release nginx"


def test_refuses_the_ssh_server(target: Target) -> None:
    sshd = Component(name="sshd", units=("ssh.service",), config_paths=("/etc/ssh/sshd_config",))
    with pytest.raises(QuarantineError) as err:
        isolate(target, sshd)
    assert err.value.message == ("refusing to quarantine sshd: stopping ssh.service would lock "
                                 "vmrepair (and you) out of the target")
    assert target.transport.argvs == []


def test_refuses_a_unit_shared_with_another_component(target: Target) -> None:
    twin = dataclasses.replace(APP, name="twin", config_paths=(), unit_paths=(),
                               units=("sampleapp.service",))
    with pytest.raises(QuarantineError) as err:
        quarantine_component(target.transport, target.agent, twin, "x", audit=target.audit,
                             watch=dataclasses.replace(WATCH, components=(*WATCH.components, twin)))
    assert err.value.message == ("refusing to quarantine twin: sampleapp.service also belongs to "
                                 "sampleapp")
    assert "separate their units and paths" in (err.value.remedy or "")


def test_refuses_a_path_inside_another_components_path(target: Target) -> None:
    site = Component(name="site", config_paths=("/etc/nginx/sites-available",))
    with pytest.raises(QuarantineError, match="/etc/nginx/sites-available also belongs to nginx"):
        quarantine_component(target.transport, target.agent, site, "x", audit=target.audit,
                             watch=dataclasses.replace(WATCH, components=(*WATCH.components, site)))


def test_refuses_a_path_that_holds_the_quarantine_root(target: Target) -> None:
    greedy = Component(name="greedy", config_paths=("/var/lib",))
    with pytest.raises(QuarantineError, match="its path /var/lib and the quarantine root"):
        isolate(target, greedy)


def test_refuses_without_systemd(target: Target) -> None:
    target.systemd.present = False
    with pytest.raises(QuarantineError) as err:
        isolate(target)
    assert err.value.message == ("cannot ask systemd about nginx.service: the target does not run "
                                 "systemd as PID 1")
    assert "/etc/nginx/nginx.conf" in target.agent.fs


def test_unit_that_will_not_stop_is_put_back_and_nothing_moves(target: Target) -> None:
    before = target.snapshot()
    target.systemd.fail["disable", "nginx.service"] = 1
    with pytest.raises(QuarantineError) as err:
        isolate(target)
    assert err.value.message == ("cannot disable nginx.service: `systemctl disable -- nginx.service` "
                                 "exited 1: Failed to disable nginx.service: Access denied")
    assert err.value.remedy == "nothing was moved; its units were put back as they were"
    assert target.snapshot() == before
    assert target.systemd.units["nginx.service"]["ActiveState"] == "active"
    assert not any(p.endswith("manifest.json") for p in target.agent.fs)


def test_failed_move_leaves_a_manifest_a_release_can_use(target: Target) -> None:
    real_move = target.agent.move_file
    moves: list[str] = []

    def flaky_move(src: str, dst: str) -> None:
        moves.append(src)
        if len(moves) == 3:
            raise AgentError("agent move_file: no space left on device")
        real_move(src, dst)

    target.agent.move_file = flaky_move  # type: ignore[method-assign]
    with pytest.raises(QuarantineError) as err:
        isolate(target)
    assert err.value.message.startswith("quarantine of nginx stopped after 2 of 5 files: cannot move ")
    assert "puts back what was moved" in (err.value.remedy or "")
    manifest = json.loads(target.agent.fs[f"{DIRECTORY}/manifest.json"].data)
    assert manifest["status"] == "quarantining"
    assert target.audit.records[-1]["event"] == "error"


def test_missing_unit_paths_are_skipped(target: Target) -> None:
    del target.agent.fs["/etc/systemd/system/sampleapp.service"]
    target.systemd.gone("sampleapp.service")
    record = isolate(target, APP)
    assert [p.path for p in record.moved] == ["/etc/default/sampleapp"]  # type: ignore[attr-defined]
    # A unit systemd does not know is neither stopped nor disabled.
    assert target.systemctl_calls("stop", "disable") == []
