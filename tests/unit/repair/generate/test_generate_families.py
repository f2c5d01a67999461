"""Each family of strategy generators: the evidence it reads and the concrete strategies it proposes
(converted through the playbook step schema, with their names, causes and confidences)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from orchestrator.model import Component, IssueKind
from orchestrator.repair.generate import (
    Matched,
    config_files,
    generate_strategies,
    last_resort,
    packages,
    revert,
    state,
    units,
)
from orchestrator.repair.generate.proposal import Proposal, strategy_name, to_matched
from orchestrator.steps.kinds.path_meta import MakeDirStep, SetMetaStep
from orchestrator.steps.kinds.quarantine import QuarantineStep
from orchestrator.steps.kinds.restore_baseline import RestoreBaselineStep
from orchestrator.steps.registry import describe, kinds
from tests.unit.repair.generate.fakes import Known, Vm, entry, folder, issue, situation

CONF = "/etc/app/app.conf"
ETC = folder("/etc/app")


def _names(proposals: list[Proposal]) -> list[str]:
    return [p.name for p in proposals]


def _plan(matched: Matched) -> list[str]:
    return [describe(step) for step in matched.strategy.steps]


# -- revert ---------------------------------------------------------------------------------------


def test_revert_proposes_one_strategy_per_changed_path_evidence_first_then_newest() -> None:
    now = [ETC, entry(CONF, sha="new", mtime=300), entry("/etc/app/b.conf", sha="new", mtime=400),
           entry("/etc/app/key", mode=0o666)]
    then = Known([ETC, entry(CONF), entry("/etc/app/b.conf"), entry("/etc/app/key", mode=0o600),
                  entry("/etc/app/gone.conf", mtime=10)])
    the_issue = issue(IssueKind.UNIT_FAILED, evidence={"journal": f"error in {CONF} line 3"})
    found = revert.generate(situation(the_issue, now=now, baseline=then))
    assert _names(found) == ["gen-revert-file-etc-app-app.conf", "gen-revert-file-etc-app-b.conf",
                             "gen-revert-meta-etc-app-key", "gen-revert-file-etc-app-gone.conf",
                             "gen-revert-component-app"]
    first = found[0]
    assert (first.cause, first.confidence, first.family) == ("file_changed", 0.9, "revert")
    assert "the issue's evidence names it" in first.description
    assert found[1].confidence > found[3].confidence          # newer before older
    matched = to_matched(first)
    assert matched is not None and matched.strategy.playbook == "generated:revert"
    assert isinstance(matched.strategy.steps[0], RestoreBaselineStep)
    assert _plan(matched) == ["restore /etc/app/app.conf from the baseline", "reset-failed app.service",
                              "restart app.service", "wait until app.service is active"]
    meta = to_matched(found[2])
    assert meta is not None and isinstance(meta.strategy.steps[0], SetMetaStep)
    assert describe(meta.strategy.steps[0]) == "set mode 0600, owner root, group root on /etc/app/key"


def test_revert_caps_the_paths_and_needs_a_baseline() -> None:
    now = [ETC, *(entry(f"/etc/app/{n}.conf", sha="new", mtime=n) for n in range(8))]
    then = Known([ETC, *(entry(f"/etc/app/{n}.conf") for n in range(8))])
    found = revert.generate(situation(issue(IssueKind.CONFIG_INVALID), now=now, baseline=then))
    assert len(found) == revert.MAX_PATHS + 1
    assert found[0].subject == "/etc/app/7.conf"
    assert revert.generate(situation(issue(IssueKind.CONFIG_INVALID), now=now, baseline=None)) == []
    assert revert.generate(situation(issue(IssueKind.DISK_FULL), now=now, baseline=then)) == []


def test_the_whole_component_revert_quarantines_added_files_in_include_dirs() -> None:
    now = [ETC, folder("/etc/app/conf.d"), entry("/etc/app/conf.d/zz.conf")]
    then = Known([ETC, folder("/etc/app/conf.d")])
    (whole,) = revert.generate(situation(issue(IssueKind.UNIT_FAILED), now=now, baseline=then))
    assert whole.name == "gen-revert-component-app"
    assert whole.steps[0] == {"restore_baseline": {"paths": ["component"],
                                                   "quarantine_added": ["unit_paths", "/etc/app/conf.d"]}}
    assert {"unit": {"action": "daemon-reload"}} in whole.steps


def test_revert_leaves_out_what_the_capture_ignored_though_an_older_baseline_has_it() -> None:
    """A baseline recorded before an ``ignore_paths`` entry still lists the ignored file; the capture
    does not: that absence is no drift, and no strategy puts the file back."""
    now = [ETC, entry(CONF, sha="new")]
    then = Known([ETC, entry(CONF), folder("/etc/app/cache"), entry("/etc/app/cache/blob")])
    found = revert.generate(replace(situation(issue(IssueKind.CONFIG_INVALID), now=now, baseline=then),
                                    excluded=("/etc/app/cache",)))
    assert _names(found) == ["gen-revert-file-etc-app-app.conf", "gen-revert-component-app"]


# -- systemd --------------------------------------------------------------------------------------


def _unit(**props: str) -> Vm:
    return Vm(show={"app.service": {"LoadState": "loaded", "ActiveState": "inactive", **props}})


def test_a_masked_unit_is_unmasked_then_started() -> None:
    vm = _unit(LoadState="masked", UnitFileState="masked")
    base = Known(units={"app.service": {"ActiveState": "active", "UnitFileState": "enabled"}})
    (unmask,) = units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=base, vm=vm))
    assert (unmask.name, unmask.cause, unmask.confidence) == ("gen-unmask-app.service", "unit_masked", 0.9)
    matched = to_matched(unmask)
    assert matched is not None
    assert _plan(matched) == ["unmask app.service", "daemon-reload", "reset-failed app.service",
                              "start app.service", "wait until app.service is active"]


def test_a_unit_disabled_since_the_baseline_is_enabled_and_a_down_one_started() -> None:
    vm = _unit(UnitFileState="disabled", ActiveState="failed")
    base = Known(units={"app.service": {"ActiveState": "active", "UnitFileState": "enabled"}})
    found = units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=base, vm=vm))
    assert _names(found) == ["gen-enable-app.service", "gen-start-app.service"]
    assert "the baseline had it enabled" in found[0].description
    # Disabled on purpose (the baseline had it disabled too): not enabled behind the operator's back.
    off = Known(units={"app.service": {"UnitFileState": "disabled"}})
    assert _names(units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=off, vm=vm))) \
        == ["gen-start-app.service"]


def test_the_newest_dropin_added_since_the_baseline_is_quarantined() -> None:
    d = "/etc/systemd/system/app.service.d"
    now = [folder(d), entry(f"{d}/10-old.conf"), entry(f"{d}/50-new.conf", mtime=900),
           entry(f"{d}/60-older.conf", mtime=500)]
    base = Known([folder(d), entry(f"{d}/10-old.conf")])
    found = units.generate(situation(issue(IssueKind.UNIT_FAILED), now=now, baseline=base, vm=Vm()))
    (dropin,) = found
    # A path with '-' (or too long) gets a hash of the exact path: unique and deterministic.
    assert re.fullmatch(r"gen-quarantine-dropin-.*\.service\.d-50-new\.conf-[0-9a-f]{8}", dropin.name)
    assert dropin.steps[0] == {"quarantine": {"path": f"{d}/50-new.conf", "within": [d]}}
    assert "the newest of 2" in dropin.description
    matched = to_matched(dropin)
    assert matched is not None and isinstance(matched.strategy.steps[0], QuarantineStep)


# -- state ----------------------------------------------------------------------------------------


def test_a_missing_state_directory_is_made_with_the_units_mode_and_owner() -> None:
    vm = _unit(StateDirectory="app", StateDirectoryMode="0750", User="app", Group="app")
    the_issue = issue(IssueKind.PATH_MISSING, "/var/lib/app", summary="/var/lib/app does not exist")
    (make,) = state.generate(situation(the_issue, now=[], missing=("/var/lib/app",), vm=vm))
    assert (make.name, make.cause, make.confidence) == ("gen-make-dir-var-lib-app", "directory_missing", 0.9)
    assert make.steps[0] == {"make_dir": {"path": "/var/lib/app", "mode": "0750", "owner": "app",
                                          "group": "app"}}
    matched = to_matched(make)
    assert matched is not None and isinstance(matched.strategy.steps[0], MakeDirStep)
    assert "StateDirectory= of app.service" in make.description


def test_the_baseline_owner_wins_and_an_uncaptured_directory_is_asked_about_in_the_vm() -> None:
    vm = _unit(LogsDirectory="app", User="app")
    base = Known([folder("/var/lib/app", mode=0o700, uid=101, gid=101)])
    found = state.generate(situation(issue(IssueKind.UNIT_FAILED), now=[], missing=("/var/lib/app",),
                                     baseline=base, vm=vm))
    assert [p.steps[0] for p in found] == [
        # /var/log/app is not one of the component's paths: make_dir could not act there, so not proposed.
        {"make_dir": {"path": "/var/lib/app", "mode": "0700", "owner": "app", "group": "app"}}]
    assert not any(a[0] == "stat" for a in vm.asked)   # captured: the capture answers


def test_modes_of_writable_dirs_come_from_the_baseline_or_go_to_the_units_user() -> None:
    now = [folder("/var/lib/app", mode=0o755, uid=0, gid=0)]
    base = Known([folder("/var/lib/app", mode=0o750, uid=101, gid=101)])
    the_issue = issue(IssueKind.PERMISSIONS, "/var/lib/app", summary="/var/lib/app is not writable by app")
    (meta,) = state.generate(situation(the_issue, now=now, baseline=base, vm=Vm()))
    assert meta.steps[0] == {"set_meta": {"path": "/var/lib/app", "mode": "0750", "owner": "app",
                                          "group": "app"}}
    (chown,) = state.generate(situation(the_issue, now=now, baseline=None, vm=Vm()))
    assert chown.name == "gen-chown-var-lib-app"
    assert chown.steps[0] == {"set_meta": {"path": "/var/lib/app", "owner": "app", "group": "app"}}


def test_the_cause_another_issue_of_the_component_names_is_proposed_for_the_primary() -> None:
    """The health check's 503 is the primary issue (critical); the state directory's owner, a
    related warning, is the cause: its repair is proposed too, after the primary's own."""
    from orchestrator.repair.generate import generate_strategies

    now = [folder("/var/lib/app", mode=0o755, uid=0, gid=0)]
    base = Known([folder("/var/lib/app", mode=0o750, uid=101, gid=101)])
    down = issue(IssueKind.HTTP_DOWN, "http://127.0.0.1:8080/health", summary="answered 503, expected 200")
    owner = issue(IssueKind.PERMISSIONS, "/var/lib/app", summary="/var/lib/app is not writable by app")
    alone = [m.strategy.name for m in generate_strategies(situation(down, now=now, baseline=base, vm=Vm()))]
    assert "gen-set-meta-var-lib-app" not in alone
    both = [m.strategy.name for m in generate_strategies(
        situation(down, now=now, baseline=base, vm=Vm()),
        related=[situation(owner, now=now, baseline=base, vm=Vm())])]
    assert both[:len(alone)] == alone and "gen-set-meta-var-lib-app" in both[len(alone):]
    assert len(both) == len(set(both))


def test_host_invariants_come_from_the_sysdirs_table() -> None:
    from orchestrator.model import Component
    host = Component(name="host")
    tmp = issue(IssueKind.PERMISSIONS, "/tmp", component="host", summary="/tmp: mode 0755, not 1777")
    (fix,) = state.generate(situation(tmp, now=[], component=host))
    assert fix.steps == ({"set_meta": {"path": "/tmp", "mode": "1777", "owner": "root", "group": "root"}},)
    shadow = issue(IssueKind.PERMISSIONS, "/etc/shadow", component="host")
    (fix,) = state.generate(situation(shadow, now=[], component=host))
    assert fix.steps[0]["set_meta"]["group"] == "shadow"
    gone = issue(IssueKind.PATH_MISSING, "/var/tmp", component="host")
    (make,) = state.generate(situation(gone, now=[], component=host))
    assert make.steps[0] == {"make_dir": {"path": "/var/tmp", "mode": "1777", "owner": "root",
                                          "group": "root"}}
    assert to_matched(make) is not None


@pytest.mark.parametrize(("path", "summary", "mode", "group"), [
    ("/etc/shadow", "/etc/shadow: readable or writable by others", "0640", "shadow"),
    ("/etc/gshadow", "/etc/gshadow: readable or writable by others", "0640", "shadow"),
    ("/etc/sudoers", "/etc/sudoers: world writable", "0440", "root"),
])
def test_a_system_files_mode_is_set_back_to_its_rule(path: str, summary: str, mode: str, group: str) -> None:
    from orchestrator.pipeline.triage import system_path_component

    wrong = issue(IssueKind.PERMISSIONS, path, component="host", summary=summary)
    (fix,) = state.generate(situation(wrong, now=[], component=system_path_component(path)))
    assert fix.steps == ({"set_meta": {"path": path, "mode": mode, "owner": "root", "group": group}},)
    assert fix.cause == "meta_changed" and to_matched(fix) is not None


def test_a_missing_system_file_gets_no_proposal() -> None:
    # Recreating /etc/shadow needs its content: no meta step can, so nothing is proposed.
    from orchestrator.model import Component
    gone = issue(IssueKind.PATH_MISSING, "/etc/shadow", component="host")
    assert state.generate(situation(gone, now=[], component=Component(name="host"))) == []


# -- config ---------------------------------------------------------------------------------------


def test_the_file_the_config_test_blames_is_restored_or_quarantined() -> None:
    now = [ETC, entry(CONF, sha="new"), entry("/etc/app/extra.conf")]
    base = Known([ETC, entry(CONF)])
    vm = Vm(config_test=(1, f"error: /etc/other/x.conf:1 and {CONF}:12: unknown key"))
    found = config_files.generate(situation(issue(IssueKind.UNIT_FAILED), now=now, baseline=base, vm=vm))
    assert _names(found)[0] == "gen-restore-config-etc-app-app.conf"
    assert "blames it line 12" in found[0].description and found[0].confidence == 0.9
    # From the issue's own evidence, a file the baseline lacks: quarantined.
    bad = issue(IssueKind.CONFIG_INVALID, "app -t", evidence={"output": "in /etc/app/extra.conf:3"})
    found = config_files.generate(situation(bad, now=now, baseline=base, vm=Vm()))
    assert found[0].name == "gen-quarantine-blamed-etc-app-extra.conf"
    assert found[0].steps[0] == {"quarantine": {"path": "/etc/app/extra.conf"}}


SITE, ENABLED = "/etc/app/sites-available/main", "/etc/app/sites-enabled/main"
LINKED = [ETC, folder("/etc/app/sites-available"), folder("/etc/app/sites-enabled"), entry(SITE, sha="new"),
          entry(ENABLED, "symlink", link="../sites-available/main")]
#: The config test blames the path it opened: the enabled site's symlink, never the file dpkg ships.
BLAMES_LINK = issue(IssueKind.CONFIG_INVALID, "app -t", evidence={"output": f"unknown key in {ENABLED}:3"})


def test_a_blamed_conffile_dpkg_says_changed_gets_the_packages_copy_not_a_quarantine() -> None:
    vm = Vm(dpkg={"app": "ii "}, verify={"app": f"??5?????? c {SITE}\n"})
    found = config_files.generate(situation(BLAMES_LINK, now=LINKED, vm=vm))
    assert (found[0].action, found[0].subject) == ("restore-blamed-conffile", SITE)
    assert found[0].steps[0] == {"restore_conffile": {"package": "app", "paths": [SITE]}}
    assert (found[0].cause, found[0].confidence, found[0].effectiveness) == ("conffile_blamed", 0.9, 0.8)
    assert "blames it line 3" in found[0].description and "changed, conffile" in found[0].description
    # The quarantine stays behind it: a VM without the package's .deb (a host layer) cannot restore it.
    assert [(p.action, p.subject) for p in found[1:2]] == [("quarantine-blamed", ENABLED)]
    assert "the package's copy is tried first" in found[1].description
    assert to_matched(found[0]) is not None


@pytest.mark.parametrize(("dpkg", "verify"), [
    ({"app": "ii "}, ""),                                  # dpkg: the file is as shipped (or not ours)
    ({"app": "ii "}, "??5??????   /etc/app/sites-available/main\n"),   # changed, but not a conffile
    ({"app": "iF "}, f"??5?????? c {SITE}\n"),             # half-configured: not asked
    ({}, f"??5?????? c {SITE}\n"),                         # not installed
])
def test_a_blamed_file_no_package_ships_as_a_changed_conffile_is_quarantined(
        dpkg: dict[str, str], verify: str) -> None:
    vm = Vm(dpkg=dpkg, verify={"app": verify})
    found = config_files.generate(situation(BLAMES_LINK, now=LINKED, vm=vm))
    assert (found[0].action, found[0].subject) == ("quarantine-blamed", ENABLED)
    assert "there is no baseline" in found[0].description


def test_the_baselines_copy_still_comes_before_the_packages() -> None:
    vm = Vm(dpkg={"app": "ii "}, verify={"app": f"??5?????? c {SITE}\n"})
    base = Known([*LINKED[:3], entry(SITE), LINKED[4]])
    found = config_files.generate(situation(BLAMES_LINK, now=LINKED, baseline=base, vm=vm))
    assert (found[0].action, found[0].subject) == ("restore-config", ENABLED)


def test_without_a_baseline_the_packages_copy_of_a_blamed_conffile_outranks_every_quarantine() -> None:
    # The shipped nginx-config playbook's own strategies against the generated one, as a bare host
    # ranks them (no history): quarantining the default site failed validation on a fresh machine (it
    # leaves nothing listening on port 80) before the package's copy was tried.
    from orchestrator.config.settings import PROJECT_ROOT
    from orchestrator.diagnose import Diagnosis, Finding
    from orchestrator.playbooks.loader import load_playbooks
    from orchestrator.repair import rank_strategies

    vm = Vm(dpkg={"app": "ii "}, verify={"app": f"??5?????? c {SITE}\n"})
    generated = generate_strategies(situation(BLAMES_LINK, now=LINKED, vm=vm))
    nginx = replace(BLAMES_LINK, component="nginx")
    finding = Finding("nginx-config", "config_invalid", 0.95, 1)
    ranked = rank_strategies(load_playbooks(PROJECT_ROOT / "playbooks"), nginx,
                             Diagnosis("config_invalid", 0.95, "nginx-config", {}, {}, (finding,)),
                             generated=generated)
    names = [r.name for r in ranked if r.name != "nginx-restore-offender"]   # needs a baseline
    assert names[0] == strategy_name("restore-blamed-conffile", SITE)
    assert names.index("nginx-quarantine-offender") > 0


def test_resolve_follows_the_captured_symlinks_only() -> None:
    now = [entry("/etc/app/a", "symlink", link="b"), entry("/etc/app/b", "symlink", link="/etc/app/c"),
           entry("/etc/app/c"), entry("/etc/app/loop", "symlink", link="loop"),
           entry("/etc/app/out", "symlink", link="../../usr/x")]
    seen = situation(issue(IssueKind.CONFIG_INVALID, evidence={"output": "in /etc/app/a:1"}), now=now)
    assert seen.resolve("/etc/app/a") == "/etc/app/c"
    assert seen.resolve("/etc/app/loop") == "/etc/app/loop"
    assert seen.resolve("/etc/app/out") == "/usr/x"         # where it points; never read there
    assert seen.resolve("/etc/app/none") == "/etc/app/none"
    assert seen.names("/etc/app/c") and seen.names("/etc/app/a") and not seen.names("/etc/app/b/x")


def test_a_file_added_to_an_include_directory_is_quarantined() -> None:
    now = [ETC, folder("/etc/app/conf.d"), entry("/etc/app/conf.d/a.conf", mtime=5),
           entry("/etc/app/conf.d/b.conf", mtime=9), entry("/etc/app/top.conf")]
    base = Known([ETC, folder("/etc/app/conf.d")])
    found = config_files.generate(situation(issue(IssueKind.HTTP_DOWN), now=now, baseline=base, vm=Vm()))
    assert found[0].name == "gen-quarantine-added-etc-app-conf.d-b.conf"
    assert found[0].steps[0] == {"quarantine": {"path": "/etc/app/conf.d/b.conf",
                                                "within": ["/etc/app/conf.d"]}}


# -- package --------------------------------------------------------------------------------------

NOT_YET = pytest.mark.skipif("dpkg_configure" not in kinds(), reason="dpkg_configure is not registered yet")


def test_a_half_configured_package_gets_dpkg_configure() -> None:
    vm = Vm(dpkg={"app": "iF "})
    (configure,) = packages.generate(situation(issue(IssueKind.PACKAGE_BROKEN), now=[], vm=vm))
    assert configure.name == "gen-dpkg-configure-app"
    assert configure.steps[0] == {"dpkg_configure": {"package": "app"}}
    assert "half-configured" in configure.description


def test_changed_files_and_conffiles_of_an_installed_package() -> None:
    vm = Vm(dpkg={"app": "ii "}, verify={"app": "??5??????   /usr/bin/app\nmissing   c /etc/app/app.conf\n"
                                                 "??5?????? c /etc/other.conf\n"})
    found = packages.generate(situation(issue(IssueKind.PACKAGE_BROKEN), now=[], vm=vm))
    assert _names(found) == ["gen-reinstall-app", "gen-restore-conffile-app"]
    assert found[0].steps[0] == {"reinstall_package": {"package": "app"}}
    assert found[1].steps[0] == {"restore_conffile": {"package": "app", "paths": [CONF]}}
    assert to_matched(found[1]) is not None


def test_unregistered_kinds_are_skipped_not_failed() -> None:
    vm = Vm(dpkg={"app": "iF "})
    matched = generate_strategies(situation(issue(IssueKind.PACKAGE_BROKEN), now=[], vm=vm))
    names = [m.strategy.name for m in matched]
    assert ("gen-dpkg-configure-app" in names) == ("dpkg_configure" in kinds())
    assert names[-1] == "gen-restart-app.service"


@NOT_YET
def test_dpkg_configure_converts_once_registered() -> None:
    vm = Vm(dpkg={"app": "iU "})
    (configure,) = packages.generate(situation(issue(IssueKind.PACKAGE_BROKEN), now=[], vm=vm))
    assert to_matched(configure) is not None


# -- last resort and the whole run ----------------------------------------------------------------


def test_the_last_resort_restarts_and_is_marked_so() -> None:
    (restart,) = last_resort.generate(situation(issue(IssueKind.HTTP_DOWN), now=[]))
    matched = to_matched(restart)
    assert matched is not None and matched.last_resort
    assert _plan(matched) == ["reset-failed app.service", "restart app.service",
                              "wait until app.service is active"]


def test_the_same_steps_from_two_families_are_kept_once() -> None:
    now = [ETC, entry(CONF, sha="new")]
    base = Known([ETC, entry(CONF)])
    matched = generate_strategies(situation(issue(IssueKind.CONFIG_INVALID), now=now, baseline=base, vm=Vm()))
    names = [m.strategy.name for m in matched]
    # config's "newest change" restores the same file with the same steps as revert's first: dropped.
    assert names == ["gen-revert-file-etc-app-app.conf", "gen-revert-component-app",
                     "gen-restart-app.service"]
    assert all(m.strategy.playbook.startswith("generated:") for m in matched)


def test_a_missing_log_directory_of_the_component_is_made_like_a_state_directory() -> None:
    # nginx opens /var/log/nginx/error.log at start (and in `nginx -t`): without the directory it fails.
    nginx = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                      log_paths=("/var/log/nginx",))
    found = state.generate(situation(issue(IssueKind.UNIT_FAILED, "nginx.service", component="nginx"),
                                     now=[], missing=("/var/log/nginx",), vm=_unit(), component=nginx))
    assert [p.steps[0] for p in found] == [
        {"make_dir": {"path": "/var/log/nginx", "mode": "0755", "owner": "root", "group": "root"}}]
    assert "log directory" in found[0].description
    # /var/log itself is every service's: never a component's own log directory.
    assert Component("rsyslog", log_paths=("/var/log",)).log_dirs == ()


def test_sockets_disabled_since_the_baseline_are_enabled_and_started_before_the_service() -> None:
    # rsyslog after `systemctl disable --now rsyslog syslog.socket`: the service needs its socket.
    app = Component("app", units=("app.service",), sockets=("app.socket",), config_paths=("/etc/app",))
    off = {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"}
    vm = Vm(show={"app.service": off, "app.socket": off})
    base = Known(units={"app.service": {"UnitFileState": "enabled"},
                        "app.socket": {"UnitFileState": "enabled"}})
    (enable, _start) = units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=base,
                                                vm=vm, component=app))
    matched = to_matched(enable)
    assert matched is not None
    assert _plan(matched)[:3] == ["enable app.socket", "start app.socket", "enable app.service"]
    assert "with app.socket" in enable.description


def test_the_situations_of_one_diagnosis_ask_the_vm_each_question_once() -> None:
    from dataclasses import replace

    from orchestrator.transport.fake import FakeTransport

    vm = FakeTransport(lambda argv, _stdin: (0, b"ok\n", b""))
    primary = replace(situation(issue(IssueKind.HTTP_DOWN, "http://127.0.0.1/"), now=[]), vm=vm)
    related = replace(primary, issue=issue(IssueKind.PERMISSIONS, "/var/lib/app"))
    assert primary.ask(["nginx", "-t"]) is not None and related.ask(["nginx", "-t"]) is not None
    assert vm.argvs == [("nginx", "-t")]


def test_a_running_unit_enabled_again_is_stopped_then_started_with_what_it_requires() -> None:
    """rsyslog after `disable --now rsyslog syslog.socket` and a restart in place on the target: it
    runs without its socket. Enabled, a plain `start` would pull syslog.socket in, which systemd
    refuses while its service runs; stopped first, the socket then the service start as at boot."""
    vm = _unit(UnitFileState="disabled", ActiveState="active")
    base = Known(units={"app.service": {"ActiveState": "active", "UnitFileState": "enabled"}})
    (enable,) = units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=base, vm=vm))
    matched = to_matched(enable)
    assert matched is not None
    assert _plan(matched) == ["enable app.service", "reset-failed app.service", "stop app.service",
                              "start app.service", "wait until app.service is active"]
    assert "restart it with what it requires" in enable.description
    # Its sockets disabled since the baseline too: enabled before, started after the stop.
    app = Component("app", units=("app.service",), sockets=("app.socket",), config_paths=("/etc/app",))
    sock_off = {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"}
    vm2 = Vm(show={"app.service": {"LoadState": "loaded", "ActiveState": "active",
                                   "UnitFileState": "disabled"}, "app.socket": sock_off})
    base2 = Known(units={"app.service": {"UnitFileState": "enabled"},
                         "app.socket": {"UnitFileState": "enabled"}})
    (enable2,) = units.generate(situation(issue(IssueKind.UNIT_INACTIVE), now=[], baseline=base2, vm=vm2,
                                          component=app))
    matched2 = to_matched(enable2)
    assert matched2 is not None
    assert _plan(matched2) == ["enable app.socket", "enable app.service", "reset-failed app.service",
                               "stop app.service", "start app.socket", "start app.service",
                               "wait until app.service is active"]
