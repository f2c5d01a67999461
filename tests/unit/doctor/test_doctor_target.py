"""`vmrepair doctor --target T [--remediate]`: the baseline it picks, the table, JSON and exit codes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import pytest

from orchestrator.app import App
from orchestrator.baseline import record_baseline
from orchestrator.cli import doctor as cli_doctor
from orchestrator.cli.output import out_console
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.doctor.target import diagnose_target
from orchestrator.errors import ConfigError
from orchestrator.model import Component
from orchestrator.targets.spec import parse_target
from tests.unit.detect.fakes import FakeAgent, make_tar
from tests.unit.quarantine.target import NGINX, Target, make_target

SPEC = parse_target("vm:web")
CRON = Component(name="cron", vital=False, units=("cron.service",))
WATCH = WatchConfig((NGINX, CRON))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(watch=WATCH)


@pytest.fixture
def target() -> Target:
    target = make_target()
    target.vm.answers["dpkg-query", "-W", "--showformat=${Package}\\t${Status}\\n"] = (
        0, b"nginx\tinstall ok installed\n", b"")
    return target


def diagnose(settings: Settings, target: Target, *, remediate: bool = False):
    return diagnose_target(settings, SPEC, target.transport, target.agent, remediate=remediate,
                           audit=target.audit, sleep=lambda _s: None)


def test_register_adds_target_and_remediate() -> None:
    parser = argparse.ArgumentParser()
    cli_doctor.register(parser.add_subparsers(dest="command"))
    plain = parser.parse_args(["doctor"])
    assert (plain.target, plain.remediate, getattr(plain, "takes_lock", False)) == (None, False, False)
    fixing = parser.parse_args(["doctor", "--target", "vm:web", "--remediate"])
    assert (fixing.target, fixing.remediate, fixing.takes_lock) == ("vm:web", True, True)


def test_remediate_without_target_is_refused(settings: Settings) -> None:
    args = argparse.Namespace(target=None, remediate=True, json=False)
    with pytest.raises(ConfigError) as err:
        cli_doctor.cmd_doctor(App(settings), args)
    assert err.value.message == "--remediate needs --target: it repairs a target's components"
    assert err.value.remedy == "vmrepair doctor --target local --remediate"


def test_healthy_target_exits_0_with_json(
    settings: Settings, target: Target, capsys: pytest.CaptureFixture[str],
) -> None:
    report = diagnose(settings, target)
    assert report.baseline == "none"
    assert cli_doctor.show_diagnosis(report, as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["ok"], data["target"], data["remediate"]) == (True, "vm:web", False)
    assert [(c["component"], c["vital"], c["state"]) for c in data["components"]] == [
        ("nginx", True, "healthy"), ("cron", False, "healthy")]
    assert data["components"][0]["dependencies"] == {"score": 100, "lowered_by": [], "notes": []}
    # What the score decides: vital is critical, optional a warning; nothing refuses a restart.
    assert [(c["severity"], c["may_restart"]) for c in data["components"]] == [
        ("critical", True), ("warning", True)]


def test_broken_vital_component_exits_1_with_a_table(
    settings: Settings, target: Target, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(out_console, "width", 300)
    target.vm.answers["nginx", "-t"] = (1, b"", b"nginx: [emerg] [red]bad[/red]\n")
    target.vm.answers["dpkg", "--audit"] = (0, b"nginx half-configured\n", b"")
    target.systemd.units["cron.service"] = {"LoadState": "loaded", "ActiveState": "failed",
                                            "SubState": "failed", "UnitFileState": "enabled"}
    code = cli_doctor.show_diagnosis(diagnose(settings, target), as_json=False)
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    err = " ".join(captured.err.split())
    assert code == 1
    assert "components of vm:web" in out
    assert ("nginx │ vital │ broken │ none │ 60 │ -40 dpkg --audit names nginx: nginx half-configured │ "
            "critical │ refused (its dependencies are broken: dpkg --audit names nginx: nginx "
            "half-configured; a restart would not help)") in out
    assert "cron │ optional │ broken │ none (optional: reduced features) │ 100 │ - │ warning │ allowed" in out
    assert "nginx: nginx: config test `nginx -t` exited 1" in err
    assert "not ready: a vital component is still broken (`--remediate` repairs vital components)" in err


def test_remediation_is_shown_as_found_to_final_state(
    settings: Settings, target: Target, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(out_console, "width", 300)
    target.vm.answers["nginx", "-t"] = (1, b"", b"nginx: [emerg] bad\n")
    report = diagnose(settings, target, remediate=True)
    code = cli_doctor.show_diagnosis(report, as_json=False)
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1  # nothing restored it, and no stub is declared for it: it stays broken
    assert "│ nginx │ vital │ broken │ reinstall skipped; restore_baseline skipped; stub_unit skipped" in out


def test_corrupt_baseline_is_reported_not_fatal(settings: Settings, target: Target) -> None:
    directory = settings.baselines_dir / SPEC.slug
    directory.mkdir(parents=True)
    (directory / "latest.json").write_text("{not json")
    report = diagnose(settings, target)
    assert report.baseline.startswith("unusable: ")
    assert report.baseline.endswith("latest.json is corrupt")
    assert report.diagnosis.components[0].name == "nginx"


def test_newest_baseline_is_named(settings: Settings, target: Target) -> None:
    info = record_baseline(settings, SPEC.slug, target.transport,
                           FakeAgent(tar=make_tar({"etc/nginx/nginx.conf": b"events {}\n"})), WATCH)
    assert diagnose(settings, target).baseline == info.name


def test_a_broken_dependency_of_an_optional_component_refuses_its_restart_in_json(
    settings: Settings, target: Target, capsys: pytest.CaptureFixture[str],
) -> None:
    target.systemd.units["cron.service"] = {"LoadState": "loaded", "ActiveState": "active",
                                            "SubState": "running", "Requires": "db.service"}
    target.systemd.units["db.service"] = {"LoadState": "not-found", "ActiveState": "inactive"}
    cli_doctor.show_diagnosis(diagnose(settings, target), as_json=True)
    cron = json.loads(capsys.readouterr().out)["components"][1]
    assert (cron["component"], cron["dependencies"]["score"]) == ("cron", 75)
    assert (cron["severity"], cron["may_restart"]) == ("warning", False)
    assert cron["restart_reason"] == ("its dependencies are broken: cron.service Requires= db.service, which "
                                      "does not exist; a restart would not help")
