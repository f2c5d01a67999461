"""The Beta posterior behind ranking: the prior from effectiveness, fine -> coarse fallback, lossy last."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.diagnose.result import Diagnosis, Finding
from orchestrator.fleet.posterior import PRIOR, PRIOR_WEIGHT, explain
from orchestrator.fleet.signature import FaultSignature, fault_signature
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import load_playbooks
from orchestrator.repair import rank_strategies
from orchestrator.repair.rank import Matched
from orchestrator.state import open_state
from orchestrator.state.outcomes import GLOBAL, OutcomeStore, StrategyRecord


def test_without_outcomes_the_mean_is_the_prior_from_effectiveness() -> None:
    why = explain(None, "x", 0.9)
    assert PRIOR_WEIGHT == 2.0
    assert (why.level, why.successes, why.tries) == (PRIOR, 0, 0)
    assert (why.prior_alpha, why.prior_beta) == pytest.approx((2.8, 1.2))
    assert why.mean == pytest.approx(0.7)
    assert why.describe() == "no outcomes, prior Beta(2.8, 1.2), mean 0.70"
    # An effectiveness outside 0..1 (a hand-built strategy) is clamped.
    assert explain(None, "x", 7.0).mean == pytest.approx(0.75)


@pytest.mark.parametrize(("levels", "level", "tally"), [
    ({"fine": (1, 1), "medium": (0, 9), "coarse": (0, 20), GLOBAL: (0, 40)}, "fine", (1, 1)),
    ({"fine": (0, 0), "medium": (2, 3), "coarse": (2, 5), GLOBAL: (9, 9)}, "medium", (2, 3)),
    ({"coarse": (4, 5), GLOBAL: (4, 8)}, "coarse", (4, 5)),
    ({GLOBAL: (0, 3)}, GLOBAL, (0, 3)),
    ({}, PRIOR, (0, 0)),
])
def test_the_finest_level_with_a_try_decides(levels: dict[str, tuple[int, int]], level: str,
                                             tally: tuple[int, int]) -> None:
    why = explain({"x": StrategyRecord(levels)}, "x", 0.5)
    assert (why.level, (why.successes, why.tries)) == (level, tally)
    assert why.mean == pytest.approx((2 + tally[0]) / (4 + tally[1]))
    assert why.as_dict()["level"] == level


def test_outcomes_move_the_mean_away_from_the_prior() -> None:
    # Six outcomes outweigh the declaration (worth PRIOR_WEIGHT = 2) either way.
    good = explain({"x": StrategyRecord({"fine": (6, 6)})}, "x", 0.3)
    bad = explain({"x": StrategyRecord({"fine": (0, 6)})}, "x", 0.9)
    assert good.mean == pytest.approx((1.6 + 6) / 10) and good.mean > explain(None, "x", 0.9).mean
    assert bad.mean == pytest.approx(2.8 / 10) and bad.mean < explain(None, "x", 0.3).mean
    assert good.describe() == "fine 6/6 ok, prior Beta(1.6, 2.4), mean 0.76"


# -- ranking from the store ----------------------------------------------------------------------------

NGINX = Component("nginx", units=("nginx.service",), packages=("nginx", "nginx-common"))


def _nginx_fault(site: str, line: int) -> tuple[Issue, Diagnosis]:
    issue = Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t", "failed", "config:nginx",
                  {"output": f'unknown directive "lisen" in /etc/nginx/sites-enabled/{site}:{line}'})
    return issue, Diagnosis("config_invalid", 0.95, "nginx-config", {}, {},
                            (Finding("nginx-config", "config_invalid", 0.95, 0),))


@pytest.fixture(scope="module")
def playbooks() -> list[m.Playbook]:
    return load_playbooks(PROJECT_ROOT / "playbooks")


def test_another_hosts_outcomes_rank_the_same_fault_here(tmp_path: Path, playbooks: list[m.Playbook]) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    there_issue, there_diagnosis = _nginx_fault("site1", 3)
    there = fault_signature(there_issue, NGINX, there_diagnosis, "debian-12")
    for _ in range(3):   # on another host the top strategy kept failing for this very fault
        store.record("nginx-restore-offender", succeeded=False, signature=there)
    # ... and succeeded for another cause, which must not count while this fault has data of its own.
    other = FaultSignature("nginx", "unit_failed", "dropin_present", "", "debian-12")
    for _ in range(9):
        store.record("nginx-restore-offender", succeeded=True, signature=other)
    issue, diagnosis = _nginx_fault("shop", 117)
    here = fault_signature(issue, NGINX, diagnosis, "debian-12")
    assert here.fine == there.fine
    ranked = rank_strategies(playbooks, issue, diagnosis, store.load_for(here))
    assert ranked[0].name == "nginx-quarantine-offender"
    demoted = next(r for r in ranked if r.name == "nginx-restore-offender")
    assert demoted.why is not None
    assert (demoted.why.level, demoted.why.successes, demoted.why.tries) == ("fine", 0, 3)
    assert demoted.success_rate == pytest.approx(2.8 / 7)
    assert ranked[0].why is not None and ranked[0].why.level == PRIOR
    # On another release the fine level has no data: the medium level (same component, issue, cause).
    bookworm_to_trixie = fault_signature(issue, NGINX, diagnosis, "debian-13")
    moved = rank_strategies(playbooks, issue, diagnosis, store.load_for(bookworm_to_trixie))
    fallback = next(r.why for r in moved if r.name == "nginx-restore-offender")
    assert fallback is not None and (fallback.level, fallback.tries) == ("medium", 3)


def _generated(name: str, effectiveness: float, confidence: float) -> Matched:
    return Matched(m.Strategy(name, "generated", ("x",), effectiveness, False, (), "generated:test"), "x",
                   confidence)


def test_the_prior_from_effectiveness_breaks_an_even_product() -> None:
    """eff x match is 0.45 for both; without outcomes the declared effectiveness also sets the prior."""
    issue, diagnosis = _nginx_fault("site1", 3)
    ranked = rank_strategies([], issue, diagnosis, None, [_generated("weak-but-sure", 0.5, 0.9),
                                                          _generated("strong", 0.9, 0.5)])
    assert [r.name for r in ranked] == ["strong", "weak-but-sure"]
    assert [r.score for r in ranked] == pytest.approx([0.45 * 0.7, 0.45 * 0.5])


def test_a_lossy_strategy_stays_last_whatever_its_record(tmp_path: Path, playbooks: list[m.Playbook]) -> None:
    disk = [p for p in playbooks if p.name == "disk-full"]
    issue = Issue("host", IssueKind.DISK_FULL, Severity.CRITICAL, "/", "full", "disk:/",
                  {"big_files": "2147483648 /var/log/app/runaway.log"})
    diagnosis = Diagnosis("big_logs", 0.9, "disk-full", {}, {}, (Finding("disk-full", "big_logs", 0.9, 0),))
    signature = fault_signature(issue, Component("host"), diagnosis, "debian-12")
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    for _ in range(20):
        store.record("disk-truncate-big-logs", succeeded=True, signature=signature)
        store.record("disk-compress-big-logs", succeeded=False, signature=signature)
    ranked = rank_strategies(disk, issue, diagnosis, store.load_for(signature))
    assert [r.strategy.lossy for r in ranked] == sorted(r.strategy.lossy for r in ranked)
    assert ranked[-1].name == "disk-truncate-big-logs"
    assert ranked[-1].why is not None and ranked[-1].why.successes == 20
    assert ranked[-1].as_dict()["lossy"] is True
