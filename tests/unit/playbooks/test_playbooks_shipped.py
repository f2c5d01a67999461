"""The playbooks shipped in ``playbooks/`` load, keep the properties repairs rely on, and the shipped JSON
schema is current."""

from __future__ import annotations

import json

import pytest

from orchestrator.diagnose.result import DiagnosticRun
from orchestrator.diagnose.rules import evaluate
from orchestrator.model import IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import SCHEMA_FILE, export_schema, load_playbooks, render_schema
from orchestrator.resources import shipped_playbooks_dir
from orchestrator.steps.kinds.fstab_entry import FstabEntryStep
from orchestrator.steps.kinds.quarantine import QuarantineStep
from orchestrator.steps.kinds.quarantine_unknown_dropins import QuarantineUnknownDropinsStep
from orchestrator.steps.kinds.reduce_logs import ReduceLogsStep
from orchestrator.steps.kinds.restore_baseline import RestoreBaselineStep
from orchestrator.steps.kinds.run import RunStep
from orchestrator.steps.kinds.unit import UnitStep
from orchestrator.steps.kinds.wait_active import WaitActiveStep

PLAYBOOKS_DIR = shipped_playbooks_dir()
SHIPPED = {"nginx-config", "unit-dropin", "disk-full", "jsonl-log", "fstab"}


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
    ("boot", IssueKind.BOOT_CONFIG, {"fstab"}),
    ("nginx", IssueKind.BOOT_CONFIG, set()),
])
def test_playbooks_cover_the_fault_classes(playbooks: list[m.Playbook], component: str, kind: IssueKind,
                                           expected: set[str]) -> None:
    assert {p.name for p in playbooks if p.applies_to(component, kind)} == expected


def test_every_restart_is_proven_by_wait_active(playbooks: list[m.Playbook]) -> None:
    # A unit that starts and dies a second later must not pass as repaired.
    for playbook in playbooks:
        for strategy in playbook.strategies:
            starts = [i for i, s in enumerate(strategy.steps)
                      if isinstance(s, UnitStep) and s.action in ("start", "restart")]
            if starts:
                assert isinstance(strategy.steps[-1], WaitActiveStep), strategy.name
                assert strategy.steps[-1].settle_s > 0, strategy.name


def test_unit_changes_are_followed_by_daemon_reload(playbooks: list[m.Playbook]) -> None:
    unit_dropin = next(p for p in playbooks if p.name == "unit-dropin")
    for strategy in unit_dropin.strategies:
        changes_units = any(isinstance(s, RestoreBaselineStep | QuarantineStep
                                       | QuarantineUnknownDropinsStep) for s in strategy.steps)
        reloads = any(isinstance(s, UnitStep) and s.action == "daemon-reload" for s in strategy.steps)
        assert reloads == changes_units, strategy.name


def test_disk_full_only_reduces_logs(playbooks: list[m.Playbook]) -> None:
    disk = next(p for p in playbooks if p.name == "disk-full")
    methods = [s.method for st in disk.strategies for s in st.steps if isinstance(s, ReduceLogsStep)]
    assert all(isinstance(s, ReduceLogsStep) for st in disk.strategies for s in st.steps)
    # Compressing (keeps the data) ranks above truncating.
    ranked = sorted(disk.strategies, key=lambda s: -s.effectiveness)
    assert methods and isinstance(ranked[0].steps[0], ReduceLogsStep)
    assert ranked[0].steps[0].method == "compress"


def test_nginx_strategies_prove_the_config_before_restarting(playbooks: list[m.Playbook]) -> None:
    nginx = next(p for p in playbooks if p.name == "nginx-config")
    for strategy in nginx.strategies:
        runs = [s for s in strategy.steps if isinstance(s, RunStep)]
        assert [t.raw for t in runs[0].argv] == ["nginx", "-t"], strategy.name


def test_fstab_strategies_are_proven_by_a_reboot_and_ranked(playbooks: list[m.Playbook]) -> None:
    fstab = next(p for p in playbooks if p.name == "fstab")
    assert fstab.components == ("boot",) and fstab.kinds == {IssueKind.BOOT_CONFIG}
    assert all(s.reboot_required for s in fstab.strategies)
    ranked = [s.name for s in sorted(fstab.strategies, key=lambda s: -s.effectiveness)]
    assert ranked == ["fstab-restore-baseline", "fstab-add-nofail", "fstab-disable-entry"]
    actions = {s.name: [st.action for st in s.steps if isinstance(st, FstabEntryStep)]
               for s in fstab.strategies}
    assert actions == {"fstab-restore-baseline": [], "fstab-add-nofail": ["nofail"],
                       "fstab-disable-entry": ["comment"]}
    for strategy in fstab.strategies:
        # findmnt --verify fails on nofail entries too: it must never be what proves a fix.
        assert not any(isinstance(s, RunStep) and s.argv[0].raw == "findmnt" for s in strategy.steps)
        last = strategy.steps[-1]
        assert isinstance(last, UnitStep) and last.action == "daemon-reload", strategy.name


@pytest.mark.parametrize(("output", "exit_status", "cause", "source"), [
    # util-linux 2.38 (Debian 12) on the injected UUID line, then on the /dev/vdz1 line.
    ("/mnt/vmrepair-data\n   [E] unreachable on boot required source: UUID=0f3c6b1e-1d5e\n"
     "\n0 parse errors, 1 error, 0 warnings\n", 1, "fstab_missing_device", "UUID=0f3c6b1e-1d5e"),
    ("/mnt/vmrepair-data\n   [W] unreachable source: /dev/vdz1: No such file or directory\n"
     "\n0 parse errors, 0 errors, 1 warning\n", 0, "fstab_missing_device", "/dev/vdz1"),
    ("/srv\n   [E] target is not a directory\n\n0 parse errors, 1 error, 0 warnings\n", 1, "fstab_invalid",
     None),
    ("Success, no errors or warnings detected\n", 0, "unknown", None),
])
def test_fstab_rules_read_findmnt_verify(playbooks: list[m.Playbook], output: str, exit_status: int,
                                         cause: str, source: str | None) -> None:
    fstab = next(p for p in playbooks if p.name == "fstab")
    run = DiagnosticRun("fstab", "findmnt-verify", ("findmnt",), exit_status, output)
    finding = evaluate(fstab, {"findmnt-verify": run})
    assert finding.cause == cause
    assert finding.variables.get("source") == source
