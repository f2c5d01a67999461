"""The public fault catalog (faults/catalog.yaml), end to end on real VMs: for each fault a patient from
its template is checked healthy, given a baseline when the entry says so, broken by the entry's script,
and repaired with ``run_repair``; the entry's own checks (over SSH, independent of vmrepair) decide
whether it is healthy again.

``make test`` runs the entries marked ``subset`` (one per repair family); ``make test-nightly`` runs all.
Every run appends one JSON line per fault to ``$VMREPAIR_CATALOG_RESULTS`` (default
``build/catalog-results.jsonl``), from which ``scripts/catalog_table.py`` writes the README table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.baseline.record import record_baseline
from orchestrator.demo.catalog import Fault, failing_checks, inject, load_catalog
from orchestrator.discover.resolve import resolve_for
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, RunOutcome, run_repair
from orchestrator.targets.spec import parse_target
from tests.integration.helpers import booted_patient, fresh_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
STABLE_S = 5.0
RESULTS = Path(os.environ.get("VMREPAIR_CATALOG_RESULTS", "build/catalog-results.jsonl"))
FAULTS = load_catalog()


def _param(fault: Fault) -> Any:
    marks = () if fault.subset else (pytest.mark.nightly,)
    return pytest.param(fault, id=fault.id, marks=marks)


class Patients:
    """One patient per template, booted the first time a fault needs it; destroyed at the end."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._booted: dict[str, tuple[str, Generator[str, None, None]]] = {}

    def fresh(self, template: str) -> Iterator[str]:
        if template not in self._booted:
            boot = booted_patient(self.app, "cat", HEALTHY, template)
            self._booted[template] = (next(boot), boot)
        yield from fresh_patient(self.app, self._booted[template][0], HEALTHY)

    def close(self) -> None:
        for _, boot in self._booted.values():
            boot.close()   # runs booted_patient's finally: destroys the VM and its baseline


@pytest.fixture(scope="module")
def patients(app: App) -> Iterator[Patients]:
    own = Patients(app)
    try:
        yield own
    finally:
        own.close()


def _revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "unknown"


def _record(row: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")


def _row(fault: Fault, outcome: RunOutcome, mttr_s: float, broken: list[str],
         after: list[str]) -> dict[str, Any]:
    detected = sorted({(i.component, str(i.kind)) for i in outcome.issues})
    expected = [o for o in outcome.outcomes if o.issue.component == fault.component]
    mine = expected[0] if expected else None
    repaired = outcome.status == SessionStatus.REPAIRED
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "revision": _revision(),
        "fault": fault.id, "service": fault.service, "family": fault.family, "template": fault.template,
        "fault_class": fault.fault_class, "baseline": fault.baseline,
        "detected": [list(d) for d in detected],
        "detected_expected": any(c == fault.component and k in fault.kinds for c, k in
                                 ((i.component, i.kind) for i in outcome.issues)),
        "status": str(outcome.status), "mttr_s": round(mttr_s, 1),
        "strategy": None if mine is None else mine.strategy,
        "route": None if mine is None else ("in place" if mine.in_place else "vm"),
        "summary": outcome.summary[:500],
        "broken_checks": broken, "failing_after": after,
        # The concordance: validated in the VM, then verified on the target (status repaired), and the
        # catalog's own checks agree. A repaired status with failing checks is a false success.
        "false_success": repaired and bool(after),
        "session_dir": str(outcome.session.dir),
    }


def _why_not(session_dir: Path, component: str) -> list[str]:
    """Each attempt in the VM with what failed in it (failed steps, failed validation checks): a
    failure in CI must carry its evidence, the session directory stays on the CI machine."""
    path = session_dir / f"attempts-{component}.json"
    try:
        attempts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path}: unreadable ({exc})"]
    lines: list[str] = []
    for attempt in attempts if isinstance(attempts, list) else []:
        lines.append(f"{attempt.get('strategy')}: {attempt.get('outcome')}: {attempt.get('reason')}")
        for step in attempt.get("steps") or []:
            if step.get("status") not in ("ok", "not_applicable"):
                lines.append(f"  step {step.get('index')} {step.get('action')}: {step.get('status')}: "
                             f"{str(step.get('detail'))[:300]}")
        for layer in (attempt.get("validation") or {}).get("layers") or []:
            for check in layer.get("checks") or []:
                if not check.get("ok"):
                    detail = str(check.get("detail"))[:300]
                    lines.append(f"  {layer.get('name')}: {check.get('name')}: {detail}")
    return lines


def _explained(row: dict[str, Any], fault: Fault) -> str:
    why = row if row["status"] == str(SessionStatus.REPAIRED) else \
        {**row, "attempts": _why_not(Path(row["session_dir"]), fault.component)}
    return json.dumps(why, indent=1)


@pytest.mark.parametrize("fault", [_param(f) for f in FAULTS])
def test_catalog_fault_is_repaired(app: App, patients: Patients, fault: Fault) -> None:
    for name in patients.fresh(fault.template):
        slug = parse_target(f"vm:{name}").slug
        with app.vms.transport(name) as ssh:
            assert failing_checks(ssh, fault) == [], "the patient is not healthy before the fault"
            if fault.baseline:
                agent = RemoteAgent(ssh)
                try:
                    watch = resolve_for(app.settings, app.state, slug, ssh, agent).watch
                    record_baseline(app.settings, slug, ssh, agent, watch)
                finally:
                    agent.close()
            inject(ssh, fault)
            broken = failing_checks(ssh, fault)
        assert broken, f"{fault.id}: every healthy check still passes after the injection"
        started = time.monotonic()
        # A fix that needs a reboot (fstab) is proven by one: the patient is a disposable VM.
        outcome = run_repair(app, f"vm:{name}", RunOptions(assume_yes=True, stable_period_s=STABLE_S,
                                                           reboot_policy="automatic", reboot_notice_s=0))
        mttr = time.monotonic() - started
        with app.vms.transport(name) as ssh:
            after = failing_checks(ssh, fault)
        row = _row(fault, outcome, mttr, broken, after)
        _record(row)
        assert row["detected_expected"], _explained(row, fault)
        assert outcome.status == SessionStatus.REPAIRED, _explained(row, fault)
        assert after == [], _explained(row, fault)
