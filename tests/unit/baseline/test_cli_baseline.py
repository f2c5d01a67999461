"""`vmrepair baseline`: refuses a broken target unless --force, says where the baseline went."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from orchestrator.baseline import load_latest_baseline
from orchestrator.cli import baseline as cli_baseline
from orchestrator.config.settings import Settings
from orchestrator.targets.spec import parse_target
from tests.unit.detect.fakes import FAILED, FakeAgent, FakeHost, make_tar
from tests.unit.template_watch import template_watch

SPEC = parse_target("vm:web")


def _agent() -> FakeAgent:
    return FakeAgent(tar=make_tar({"etc/nginx/nginx.conf": b"events {}\n"}))


def test_register_adds_baseline_with_force() -> None:
    parser = argparse.ArgumentParser()
    cli_baseline.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["baseline", "--target", "local", "--force"])
    assert (args.target, args.force, args.handler) == ("local", True, cli_baseline.cmd_baseline)


def test_refuses_a_target_with_critical_issues(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost(units={"nginx.service": FAILED}, config_tests={"sshd": (255, b"bad\n")})
    code = cli_baseline.check_and_record(dataclasses.replace(settings, watch=template_watch()), SPEC,
                                         host.transport(), _agent(), force=False, as_json=False)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert ("vm:web is not healthy, refusing to record a baseline; failing probes: "
            "unit:nginx.service, config:sshd") in err
    assert "--force" in err
    assert load_latest_baseline(settings, SPEC.slug) is None


def test_refusal_in_json_names_the_probes(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    host = FakeHost(units={"nginx.service": FAILED})
    code = cli_baseline.check_and_record(settings, SPEC, host.transport(), _agent(), force=False,
                                         as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert (code, data["recorded"], data["failing_probes"]) == (1, False, ["unit:nginx.service"])


def test_force_records_anyway(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    host = FakeHost(units={"nginx.service": FAILED})
    code = cli_baseline.check_and_record(settings, SPEC, host.transport(), _agent(), force=True,
                                         as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert (code, data["recorded"], data["forced"]) == (0, True, True)
    assert load_latest_baseline(settings, SPEC.slug) is not None


def test_healthy_target_is_recorded_and_the_place_printed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_baseline.check_and_record(settings, SPEC, FakeHost().transport(), _agent(), force=False,
                                         as_json=False)
    # rich wraps long paths anywhere: compare without whitespace.
    err = "".join(capsys.readouterr().err.split())
    baseline = load_latest_baseline(settings, SPEC.slug)
    assert code == 0
    assert baseline is not None
    assert f"recordedin{baseline.info.directory}:" in err
