"""Fleet learning end to end on real VMs: host A repairs a fault, exports a signed bundle; host B imports
it, ranks A's winning strategy by A's record and tries it first (in fewer attempts when A needed more
than one: since the blamed-conffile proposal, A's first repair of this fault is right at the first try,
so the bundle's effect is checked in B's ranking, where it shows whatever A tried).

Host B is this orchestrator with host A's outcomes taken out of its state store for the test (put back
afterwards), so that the only record B has of the fault is the imported bundle: the ranking sees exactly
what a second machine that never met the fault would. The patient is reverted to its healthy snapshot
and broken again the same way between the two runs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.demo.faults import inject
from orchestrator.fleet.export import catalog_describer, export_bundle
from orchestrator.fleet.imports import import_bundle
from orchestrator.fleet.keys import create_key
from orchestrator.fleet.trust import TrustStore
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.playbooks.catalog import load_catalog
from tests.integration.helpers import booted_patient, fresh_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
STABLE_S = 5.0


@pytest.fixture(scope="module")
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "fleet", HEALTHY)


def _break_and_repair(app: App, name: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Revert ``name`` to healthy, break nginx's config, repair it; (outcome, VM attempts in order)."""
    fresh = fresh_patient(app, name, HEALTHY)
    next(fresh)
    with app.vms.transport(name) as ssh:
        inject(ssh, "nginx-config", "directive")
        assert not ssh.run(["nginx", "-t"]).succeeded
    outcome = run_repair(app, f"vm:{name}", RunOptions(assume_yes=True, stable_period_s=STABLE_S))
    result = outcome.as_dict()
    assert outcome.status is SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    attempts = json.loads((app.settings.sessions_dir / str(result["session"]) / "attempts-nginx.json")
                          .read_text())
    with pytest.raises(StopIteration):   # fresh_patient's check: no troubleshooting VM left behind
        next(fresh)
    return result, attempts


def _tried(attempts: list[dict[str, object]]) -> list[tuple[str, str]]:
    """Strategies run in the VM, in order. A skipped one (its precondition, such as a baseline, is not
    met) costs no VM work and is not an attempt."""
    return [(str(a.get("strategy")), str(a.get("outcome"))) for a in attempts
            if a.get("outcome") != "skipped"]


def test_a_bundle_from_host_a_makes_host_b_try_the_winning_strategy_first(
        app: App, patient: str, tmp_path: Path) -> None:
    db = app.state
    with db.write() as tx:
        tx.execute("DROP TABLE IF EXISTS temp.outcomes_saved")
        tx.execute("CREATE TEMP TABLE outcomes_saved AS SELECT * FROM outcomes")
    key = create_key(tmp_path / "host-a" / "signing_key")
    try:
        with db.write() as tx:          # host A starts without any record
            tx.execute("DELETE FROM outcomes")
        _, attempts_a = _break_and_repair(app, patient)
        tried_a = _tried(attempts_a)
        print(f"host A tried: {tried_a}")
        winner = tried_a[-1][0]
        assert tried_a[-1][1] == "validated", tried_a

        now = dt.datetime.now(dt.UTC)
        bundle = export_bundle(db, key, since=None, expires=dt.timedelta(days=1), os_release="debian 12",
                               describe=catalog_describer(load_catalog(app.settings)), now=now)
        assert winner in [s.strategy for s in bundle.payload.strategies], bundle.left_out
        assert patient not in bundle.data.decode("ascii", "replace")

        with db.write() as tx:          # host B: it never met the fault
            tx.execute("DELETE FROM outcomes")
        TrustStore(db).trust(key.public_raw, "host-a", pubkey_b64=key.public_b64)
        imported = import_bundle(db, bundle.data)
        print(f"host B imported version {imported.version}: {imported.strategies} strategy count(s)")
        result_b, attempts_b = _break_and_repair(app, patient)
        tried_b = _tried(attempts_b)
        print(f"host B tried: {tried_b}")
        print(f"attempts: host A {len(tried_a)}, host B {len(tried_b)} (saved {len(tried_a) - len(tried_b)})")
        assert tried_b[0] == (winner, "validated"), tried_b
        # B has no outcome of its own: what its ranking knows of the winner is A's record, imported.
        diagnosis = json.loads((app.settings.sessions_dir / str(result_b["session"]) / "diagnosis-nginx.json")
                               .read_text())
        why = next(r["why"] for r in diagnosis["ranking"] if r["strategy"] == winner)
        assert why["level"] != "prior" and why["successes"] >= 1, why
        if len(tried_a) > 1:   # A paid for failed tries: B, knowing them, does not repeat them
            assert len(tried_b) < len(tried_a)
    finally:
        TrustStore(db).revoke(key.key_id)   # its imported counts go with it
        with db.write() as tx:
            tx.execute("DELETE FROM outcomes")
            tx.execute("INSERT INTO outcomes SELECT * FROM temp.outcomes_saved")
            tx.execute("DROP TABLE temp.outcomes_saved")
