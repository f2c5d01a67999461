"""Family ``state`` on a ``pkgmeta:`` issue: put each path back to the mode and owner its package ships."""

from __future__ import annotations

import json

from orchestrator.detect.pkgmeta import RESTORE_KEY
from orchestrator.model import Issue, IssueKind, Severity
from orchestrator.repair.generate import state
from orchestrator.repair.generate.proposal import to_matched
from tests.unit.repair.generate.fakes import APP, situation


def pkgmeta_issue(values: object) -> Issue:
    return Issue("app", IssueKind.PERMISSIONS, Severity.CRITICAL, "app", "2 path(s) differ", "pkgmeta:app",
                 {RESTORE_KEY: values if isinstance(values, str) else json.dumps(values)})


def test_every_differing_path_gets_the_package_s_mode_and_owner_in_one_strategy() -> None:
    values = [["/etc/app/app.conf", "0644", "root", "root"], ["/etc/app/secret", "0640", "root", "app"]]
    (fix,) = state.generate(situation(pkgmeta_issue(values), now=[]))
    assert fix.name == "gen-package-meta-app"
    assert fix.steps[:2] == (
        {"set_meta": {"path": "/etc/app/app.conf", "mode": "0644", "owner": "root", "group": "root"}},
        {"set_meta": {"path": "/etc/app/secret", "mode": "0640", "owner": "root", "group": "app"}})
    assert fix.cause == "meta_changed"
    assert to_matched(fix) is not None   # valid steps of the playbook schema


def test_values_outside_the_component_or_malformed_are_never_proposed() -> None:
    values = [["/etc/shadow", "0644", "root", "root"], ["/etc/app/x", "777", "root", "root"],
              ["/etc/app/y", "0644", "root; rm -rf /", "root"], ["/etc/app/z", "0644", "root"], "junk",
              ["/etc/app/ok", "0600", "app", "app"]]
    (fix,) = state.generate(situation(pkgmeta_issue(values), now=[]))
    assert [s["set_meta"]["path"] for s in fix.steps if "set_meta" in s] == ["/etc/app/ok"]
    assert state.generate(situation(pkgmeta_issue("not json {"), now=[])) == []
    assert state.generate(situation(pkgmeta_issue({"a": 1}), now=[])) == []
    assert APP.config_paths == ("/etc/app",)
