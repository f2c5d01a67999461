"""prefetch: the families' questions to the VM asked ahead, side by side; generating then asks nothing."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.model import IssueKind
from orchestrator.repair.generate import generate_strategies, prefetch
from tests.unit.repair.generate.fakes import APP, Vm, issue, situation


def test_what_the_families_would_ask_is_asked_ahead_and_generating_asks_nothing_more() -> None:
    vm = Vm(dpkg={"app": "ii "}, verify={"app": "??5??????   /usr/bin/app\n"}, config_test=(1, "bad"),
            show={"app.service": {"LoadState": "loaded", "ActiveState": "failed"}})
    broken = situation(issue(IssueKind.CONFIG_INVALID), now=[], vm=vm)
    prefetch(broken)
    ahead = sorted(vm.asked)
    assert ("app", "-t") in ahead and ("dpkg", "--verify", "--", "app") in ahead
    assert any(argv[:2] == ("systemctl", "show") for argv in ahead)
    assert any(argv[:2] == ("dpkg-query", "-W") for argv in ahead)
    names = [m.strategy.name for m in generate_strategies(broken)]
    assert "gen-reinstall-app" in names
    assert sorted(vm.asked) == ahead   # every answer came from the situation's cache


def test_a_config_test_output_in_the_evidence_is_not_asked_again() -> None:
    vm = Vm(dpkg={"app": "ii "})
    prefetch(situation(issue(IssueKind.CONFIG_INVALID, evidence={"output": "line 3: bad"}), now=[], vm=vm))
    assert ("app", "-t") not in vm.asked


def test_an_issue_no_family_asks_about_asks_only_for_its_units() -> None:
    vm = Vm()
    prefetch(situation(issue(IssueKind.DISK_FULL, subject="/"), now=[], vm=vm))
    assert all(argv[:2] == ("systemctl", "show") for argv in vm.asked)


def test_a_component_s_units_are_shown_in_one_call_and_each_answer_kept_for_its_unit() -> None:
    two = replace(APP, units=("app.service", "app-worker.service"))
    vm = Vm(show={"app.service": {"LoadState": "loaded", "ActiveState": "failed"},
                  "app-worker.service": {"LoadState": "loaded", "ActiveState": "active"}})
    broken = situation(issue(IssueKind.DISK_FULL, subject="/"), now=[], vm=vm, component=two)
    prefetch(broken)
    shows = [argv for argv in vm.asked if argv[:2] == ("systemctl", "show")]
    assert len(shows) == 1 and shows[0][-2:] == ("app.service", "app-worker.service")
    assert broken.show("app.service")["ActiveState"] == "failed"
    assert broken.show("app-worker.service")["ActiveState"] == "active"
    assert len(vm.asked) == 1   # both answered from the one call


def test_the_related_issues_questions_are_asked_ahead_too_and_answered_from_the_shared_cache() -> None:
    # The primary issue carries the config test's output; the unit's failure, related, does not: its
    # config family asks the test, which was a guest process after the diagnostics in every repair.
    vm = Vm(dpkg={"app": "ii "}, config_test=(1, "error in /etc/app/app.conf:3"))
    primary = situation(issue(IssueKind.CONFIG_INVALID, evidence={"output": "line 3: bad"}), now=[], vm=vm)
    unit_down = replace(primary, issue=issue(IssueKind.UNIT_FAILED))
    prefetch(primary, related=[unit_down])
    assert ("app", "-t") in vm.asked
    generate_strategies(primary, related=[unit_down])
    assert vm.asked.count(("app", "-t")) == 1     # generating took the answer asked ahead
