"""Ranking: effectiveness x cause match x posterior success rate (prior from effectiveness), stable on
ties."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.diagnose import Diagnosis, Finding
from orchestrator.fleet.posterior import explain
from orchestrator.model import IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import load_playbook, load_playbooks
from orchestrator.repair import rank_strategies
from orchestrator.repair.rank import Matched
from tests.unit.repair.fakes import issue

NGINX_ISSUE = issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t")


@pytest.fixture(scope="module")
def playbooks() -> list[m.Playbook]:
    return load_playbooks(PROJECT_ROOT / "playbooks")


def _diagnosis(cause: str, confidence: float, playbook: str | None = "nginx-config",
               findings: tuple[Finding, ...] | None = None) -> Diagnosis:
    if findings is None:
        findings = () if playbook is None else (Finding(playbook, cause, confidence, 0),)
    return Diagnosis(cause, confidence, playbook, {}, {}, findings)


#: The history factor of a strategy without history: the prior mean (1 + 2 eff) / 4 (PRIOR_WEIGHT 2).
def _prior(eff: float) -> float:
    return (1 + 2 * eff) / 4


def test_history_factor_is_the_posterior_mean_with_effectiveness_as_prior() -> None:
    # Beta(1 + 2 eff, 1 + 2 (1 - eff)) updated with (successes, tries); eff 0.5 gives Laplace's rule.
    assert explain(None, "x", 0.5).mean == 0.5
    assert explain(None, "x", 0.9).mean == pytest.approx(0.7)
    assert explain({"x": (3, 3)}, "x", 0.5).mean == pytest.approx(5 / 7)
    assert explain({"x": (0, 2)}, "x", 0.5).mean == pytest.approx(2 / 6)
    # Corrupt history is clamped rather than trusted.
    assert explain({"x": (9, 2)}, "x", 0.5).mean == pytest.approx(4 / 6)
    assert explain({"x": (-1, -5)}, "x", 0.5).mean == 0.5


def test_named_cause_ranks_by_effectiveness_times_confidence(playbooks: list[m.Playbook]) -> None:
    ranked = rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_invalid", 0.95))
    assert [r.name for r in ranked] == ["nginx-restore-offender", "nginx-quarantine-offender",
                                        "nginx-pristine-conffile", "nginx-restore-config", "nginx-restart"]
    top = ranked[0]
    assert top.score == pytest.approx(0.9 * 0.95 * _prior(0.9))
    assert (top.cause, top.match, top.playbook) == ("config_invalid", 0.95, "nginx-config")
    assert top.success_rate == pytest.approx(_prior(0.9))
    assert top.why is not None and top.why.level == "prior" and top.as_dict()["why"] == top.why.as_dict()
    wildcard = ranked[-1]
    assert (wildcard.cause, wildcard.match) == ("*", 0.5)
    assert wildcard.score == pytest.approx(0.2 * 0.5 * _prior(0.2))


def test_strategies_for_other_causes_are_left_out(playbooks: list[m.Playbook]) -> None:
    ranked = rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_valid", 0.15))
    # 0.5 * 0.15 * prior(0.5) = 0.0375 > 0.2 * 0.5 * prior(0.2) = 0.035: the declared effectiveness
    # counts as a factor and as the prior, so the feeble wildcard restart no longer comes first.
    assert [r.name for r in ranked] == ["nginx-restore-config", "nginx-restart"]


def test_unknown_cause_leaves_only_wildcards(playbooks: list[m.Playbook]) -> None:
    unit_issue = issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service")
    ranked = rank_strategies(playbooks, unit_issue, _diagnosis("unknown", 0.0, None))
    assert [r.name for r in ranked] == ["unit-restart", "jsonl-restart"]


def test_history_moves_strategies(playbooks: list[m.Playbook]) -> None:
    history = {"nginx-restore-offender": (0, 6), "nginx-quarantine-offender": (5, 5)}
    ranked = rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_invalid", 0.95), history)
    assert ranked[0].name == "nginx-quarantine-offender"
    # effectiveness 0.7: prior Beta(2.4, 1.6), plus 5 of 5 (the plain mapping is the global level).
    assert ranked[0].success_rate == pytest.approx(7.4 / 9)
    assert ranked[0].why is not None and (ranked[0].why.level, ranked[0].why.tries) == ("global", 5)


def test_each_playbook_is_matched_against_its_own_finding(playbooks: list[m.Playbook]) -> None:
    findings = (Finding("unit-dropin", "dropin_present", 0.75, 1), Finding("jsonl-log", "unknown", 0.0, None))
    diagnosis = _diagnosis("dropin_present", 0.75, "unit-dropin", findings)
    ranked = rank_strategies(playbooks, issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service"),
                             diagnosis)
    assert [r.name for r in ranked] == ["unit-quarantine-unknown-dropins", "unit-restore-baseline",
                                        "unit-quarantine-dropin", "unit-restart", "jsonl-restart"]


def test_ties_keep_playbook_then_file_order(tmp_path: Path) -> None:
    strategy = ("  - {{name: {name}-{x}, description: d, for_causes: ['*'], effectiveness: 0.5,"
                " steps: [{{reduce_logs: {{min_bytes: 1, method: compress}}}}]}}\n")
    text = ("name: {name}\ndescription: d\napplies_to: {{components: ['*'], kinds: [disk_full]}}\n"
            "strategies:\n" + strategy.replace("{x}", "a") + strategy.replace("{x}", "b"))
    for name in ("zz", "aa"):
        (tmp_path / f"{name}.yaml").write_text(text.format(name=name))
    books = [load_playbook(tmp_path / "zz.yaml"), load_playbook(tmp_path / "aa.yaml")]
    ranked = rank_strategies(books, issue("host", IssueKind.DISK_FULL, "/"), _diagnosis("unknown", 0.0, None))
    assert [r.name for r in ranked] == ["zz-a", "zz-b", "aa-a", "aa-b"]


def test_zero_scores_are_dropped(playbooks: list[m.Playbook]) -> None:
    assert not [r for r in rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_invalid", 0.0))
                if r.cause != "*"]


def test_lossy_strategies_rank_after_every_data_preserving_one() -> None:
    """A failed compress must never promote truncation (data loss) above it."""
    from pathlib import Path

    from orchestrator.config.settings import PROJECT_ROOT
    from orchestrator.model import Issue, IssueKind, Severity
    from orchestrator.playbooks.loader import load_playbooks
    from orchestrator.repair import rank_strategies

    playbooks = [p for p in load_playbooks(Path(PROJECT_ROOT) / "playbooks") if p.name == "disk-full"]
    issue = Issue("host", IssueKind.DISK_FULL, Severity.CRITICAL, "/", "full", "disk:/")
    diagnosis = _diagnosis("big_logs", 0.9, "disk-full")
    history = {"disk-compress-big-logs": (0, 9), "disk-truncate-big-logs": (9, 9)}
    ranked = rank_strategies(playbooks, issue, diagnosis, history)
    lossy = [r.strategy.lossy for r in ranked]
    assert lossy == sorted(lossy), [r.name for r in ranked]
    assert ranked[-1].name == "disk-truncate-big-logs"


def _generated(name: str, effectiveness: float, confidence: float, *, last_resort: bool = False) -> Matched:
    strategy = m.Strategy(name, "generated", ("x",), effectiveness, False, (), "generated:test")
    return Matched(strategy, "x", confidence, last_resort=last_resort)


def test_generated_rank_with_playbook_strategies_by_one_formula(playbooks: list[m.Playbook]) -> None:
    generated = [_generated("gen-revert-file-etc-nginx-nginx.conf", 0.8, 0.9),
                 _generated("gen-restart-nginx.service", 0.9, 0.9, last_resort=True),
                 _generated("gen-never", 0.5, 0.0)]
    ranked = rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_invalid", 0.95), generated=generated)
    names = [r.name for r in ranked]
    # 0.9*0.95 > 0.8*0.9 > 0.7*0.95: interleaved by score; the last resort comes after every other
    # strategy, whatever its score; a zero confidence is dropped like a zero score.
    assert names[:3] == ["nginx-restore-offender", "gen-revert-file-etc-nginx-nginx.conf",
                         "nginx-quarantine-offender"]
    assert names[-1] == "gen-restart-nginx.service" and "gen-never" not in names
    gen = ranked[1]
    assert (gen.cause, gen.match, gen.playbook) == ("x", 0.9, "generated:test")
    assert gen.score == pytest.approx(0.8 * 0.9 * _prior(0.8))


def test_history_moves_generated_strategies_by_name(playbooks: list[m.Playbook]) -> None:
    generated = [_generated("gen-a", 0.8, 0.9)]
    history = {"gen-a": (6, 6), "nginx-restore-offender": (0, 4)}
    ranked = rank_strategies(playbooks, NGINX_ISSUE, _diagnosis("config_invalid", 0.95), history, generated)
    assert ranked[0].name == "gen-a" and ranked[0].success_rate == pytest.approx(8.6 / 10)
