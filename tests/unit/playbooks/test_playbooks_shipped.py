"""The playbooks shipped in ``playbooks/`` load, keep the properties repairs rely on, and the shipped JSON
schema is current."""

from __future__ import annotations

import json

import pytest

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.model import IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import SCHEMA_FILE, export_schema, load_playbooks, render_schema

PLAYBOOKS_DIR = PROJECT_ROOT / "playbooks"
SHIPPED = {"nginx-config", "unit-dropin", "disk-full", "jsonl-log"}


@pytest.fixture(scope="module")
def playbooks() -> list[m.Playbook]:
    return load_playbooks(PLAYBOOKS_DIR)


def test_all_shipped_playbooks_load(playbooks: list[m.Playbook]) -> None:
    assert {p.name for p in playbooks} == SHIPPED
    for playbook in playbooks:
        assert len(playbook.strategies) >= 2, playbook.name
        assert playbook.diagnostics and playbook.rules, playbook.name


def test_shipped_schema_is_current() -> None:
    shipped = (PLAYBOOKS_DIR / SCHEMA_FILE).read_text()
    assert json.loads(shipped) == export_schema(), "regenerate with: python -c 'from orchestrator." \
        "playbooks.loader import render_schema; print(render_schema(), end=\"\")' > playbooks/" + SCHEMA_FILE
    assert shipped == render_schema()


@pytest.mark.parametrize(("component", "kind", "expected"), [
    ("nginx", IssueKind.CONFIG_INVALID, {"nginx-config"}),
    ("nginx", IssueKind.UNIT_FAILED, {"nginx-config", "unit-dropin"}),
    ("nginx", IssueKind.HTTP_DOWN, {"nginx-config"}),
    ("sampleapp", IssueKind.UNIT_FAILED, {"unit-dropin", "jsonl-log"}),
    ("sampleapp", IssueKind.LOG_CORRUPT, {"jsonl-log"}),
    ("host", IssueKind.DISK_FULL, {"disk-full"}),
    ("host", IssueKind.INODES_FULL, {"disk-full"}),
    ("cron", IssueKind.UNIT_INACTIVE, {"unit-dropin"}),
])
def test_playbooks_cover_the_fault_classes(playbooks: list[m.Playbook], component: str, kind: IssueKind,
                                           expected: set[str]) -> None:
    assert {p.name for p in playbooks if p.applies_to(component, kind)} == expected


def test_every_restart_is_proven_by_wait_active(playbooks: list[m.Playbook]) -> None:
    # A unit that starts and dies a second later must not pass as repaired.
    for playbook in playbooks:
        for strategy in playbook.strategies:
            starts = [i for i, s in enumerate(strategy.steps)
                      if isinstance(s, m.UnitStep) and s.action in ("start", "restart")]
            if starts:
                assert isinstance(strategy.steps[-1], m.WaitActiveStep), strategy.name
                assert strategy.steps[-1].settle_s > 0, strategy.name


def test_unit_changes_are_followed_by_daemon_reload(playbooks: list[m.Playbook]) -> None:
    unit_dropin = next(p for p in playbooks if p.name == "unit-dropin")
    for strategy in unit_dropin.strategies:
        changes_units = any(isinstance(s, m.RestoreBaselineStep | m.QuarantineStep
                                       | m.QuarantineUnknownDropinsStep) for s in strategy.steps)
        reloads = any(isinstance(s, m.UnitStep) and s.action == "daemon-reload" for s in strategy.steps)
        assert reloads == changes_units, strategy.name


def test_disk_full_only_reduces_logs(playbooks: list[m.Playbook]) -> None:
    disk = next(p for p in playbooks if p.name == "disk-full")
    methods = [s.method for st in disk.strategies for s in st.steps if isinstance(s, m.ReduceLogsStep)]
    assert all(isinstance(s, m.ReduceLogsStep) for st in disk.strategies for s in st.steps)
    # Compressing (keeps the data) ranks above truncating.
    ranked = sorted(disk.strategies, key=lambda s: -s.effectiveness)
    assert methods and isinstance(ranked[0].steps[0], m.ReduceLogsStep)
    assert ranked[0].steps[0].method == "compress"


def test_nginx_strategies_prove_the_config_before_restarting(playbooks: list[m.Playbook]) -> None:
    nginx = next(p for p in playbooks if p.name == "nginx-config")
    for strategy in nginx.strategies:
        runs = [s for s in strategy.steps if isinstance(s, m.RunStep)]
        assert [t.raw for t in runs[0].argv] == ["nginx", "-t"], strategy.name
