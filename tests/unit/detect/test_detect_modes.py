"""``modes:<component>``: owners and modes against the last baseline."""

from __future__ import annotations

from orchestrator.detect import modes
from orchestrator.model import Component, IssueKind, Severity
from tests.unit.fake_agent import FakeAgent, Node, file_node

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                  unit_paths=("/etc/systemd/system/nginx.service.d",))
RECORDED = {"/etc/nginx": ("dir", 0o755, 0, 0), "/etc/nginx/nginx.conf": ("file", 0o644, 0, 0),
            "/etc/nginx/sites-enabled/default": ("symlink", 0o777, 0, 0)}


def agent(conf_mode: int = 0o644, uid: int = 0) -> FakeAgent:
    return FakeAgent(fs={"/etc/nginx": Node("dir", mode=0o755),
                         "/etc/nginx/nginx.conf": file_node(b"events {}\n", conf_mode, uid=uid),
                         "/etc/nginx/extra.conf": file_node(b"x\n", 0o600)},
                     symlinks={"/etc/nginx/sites-enabled/default": "/etc/nginx/sites-available/default"})


def test_unchanged_owners_and_modes_pass_and_new_files_are_not_judged() -> None:
    result = modes.probe_modes(agent(), NGINX, RECORDED)
    assert result.ok and result.evidence["compared"] == "3"


def test_a_mode_or_owner_changed_since_the_baseline_fails_with_the_remedy() -> None:
    result = modes.probe_modes(agent(conf_mode=0o600, uid=33), NGINX, RECORDED)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.PERMISSIONS, Severity.CRITICAL)
    assert result.evidence["changed"] == "/etc/nginx/nginx.conf: file 0644 0:0 -> file 0600 33:0"
    assert "chmod 0644 /etc/nginx/nginx.conf" in result.evidence["remedy"]
    optional = modes.probe_modes(agent(conf_mode=0o600), Component("nginx", vital=False,
                                                                  config_paths=("/etc/nginx",)), RECORDED)
    assert optional.severity == Severity.WARNING


def test_planned_only_where_the_baseline_recorded_a_path_of_the_component() -> None:
    assert modes.is_planned(NGINX, RECORDED)
    assert not modes.is_planned(NGINX, {"/etc/ssh/sshd_config": ("file", 0o644, 0, 0)})
    assert not modes.is_planned(NGINX, {})
    assert modes.first_reads(NGINX) == (("manifest", {"paths": ["/etc/nginx",
                                                               "/etc/systemd/system/nginx.service.d"]}),)


def test_many_changes_are_counted_and_listed_within_the_cap() -> None:
    recorded = {f"/etc/nginx/f{i}": ("file", 0o644, 0, 0) for i in range(50)}
    now = dict.fromkeys(recorded, ("file", 438, 0, 0))
    result = modes.evaluate(NGINX, now, recorded)
    assert "50 path(s)" in result.summary
    assert len(result.evidence["changed"].splitlines()) == modes.MAX_LISTED
