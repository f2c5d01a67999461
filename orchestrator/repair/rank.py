"""Rank the strategies of the applicable playbooks for one diagnosed issue.

For a strategy ``s`` of playbook ``p``, with ``p``'s finding (cause ``c``, confidence ``k``)::

    score(s) = effectiveness(s) * match(s) * (successes(s) + 1) / (attempts(s) + 2)

    match(s) = k      when c is in s.for_causes      (a named cause: trust the diagnosis as far as it goes)
             = 0.5    when s.for_causes is ["*"]     (works for any cause, so it never outranks a
                                                       confidently diagnosed specific fix)
             = excluded otherwise

The last factor is the Laplace-smoothed success rate from the history of earlier attempts (keyed by the
strategy's name, unique across playbooks): 0.5 without history, so history only moves a strategy up or
down from there. Strategies scoring 0 are dropped. Ties keep playbook order, then file order of the
strategies (the sort is stable).

Strategies marked ``lossy`` (they discard data, such as truncating a log) come after every strategy that
is not, whatever the scores: a past failure of a data-preserving fix must never promote one that loses
data (seen when a compress strategy timed out once and truncation then ranked first).

Generated strategies (:mod:`orchestrator.repair.generate`) come as :class:`Matched`: each carries the
cause and confidence its evidence gives it, which stand for ``c`` and ``k`` above, so the same formula
and the same history (by name) rank them among the playbooks' strategies. A ``last_resort`` one (a
plain restart) comes after every other data-preserving strategy, whatever its score: a restart that
once worked must not run before the fix that addresses the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.diagnose.result import Diagnosis
from orchestrator.model import Issue
from orchestrator.playbooks.model import Playbook, Strategy

WILDCARD_MATCH = 0.5


@dataclass(frozen=True)
class Matched:
    """A strategy that brings its own match: generated from the evidence, it needs no playbook finding."""

    strategy: Strategy
    #: What the evidence says is wrong (``file_changed``, ``unit_masked`` ...).
    cause: str
    #: How strongly the evidence points at this strategy (0..1), in place of a finding's confidence.
    confidence: float
    #: Tried after every other strategy that keeps data (a plain restart).
    last_resort: bool = False


@dataclass(frozen=True)
class RankedStrategy:
    strategy: Strategy
    score: float
    #: The cause the strategy was matched for ("*" for a wildcard strategy).
    cause: str
    match: float
    success_rate: float
    last_resort: bool = False

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def playbook(self) -> str:
        return self.strategy.playbook

    def as_dict(self) -> dict[str, object]:
        return {"strategy": self.name, "playbook": self.playbook, "score": round(self.score, 6),
                "cause": self.cause, "match": self.match, "success_rate": round(self.success_rate, 6),
                "effectiveness": self.strategy.effectiveness, "last_resort": self.last_resort}


def success_rate(history: Mapping[str, tuple[int, int]] | None, name: str) -> float:
    """Laplace-smoothed ``(successes + 1) / (attempts + 2)``; bad counts are clamped, not trusted."""
    successes, attempts = (history or {}).get(name, (0, 0))
    attempts = max(0, attempts)
    successes = min(max(0, successes), attempts)
    return (successes + 1) / (attempts + 2)


def rank_strategies(
    playbooks: Sequence[Playbook],
    issue: Issue,
    diagnosis: Diagnosis,
    history: Mapping[str, tuple[int, int]] | None = None,
    generated: Sequence[Matched] = (),
) -> list[RankedStrategy]:
    """Every strategy worth trying for ``issue``, best first (see the module docstring for the score).

    Each playbook's strategies are matched against that playbook's own finding, so a cause name used
    by two playbooks cannot pull in the other's strategies; a diagnosis without findings (built by hand)
    applies its verdict to every playbook. ``generated`` strategies are matched by their own cause and
    confidence; on a tie the playbooks' strategies come first.
    """
    ranked: list[RankedStrategy] = []
    for playbook in playbooks:
        if not playbook.applies_to(issue.component, issue.kind):
            continue
        finding = diagnosis.finding_for(playbook.name)
        cause, confidence = (finding.cause, finding.confidence) if finding is not None \
            else (diagnosis.cause, diagnosis.confidence)
        for strategy in playbook.strategies:
            if strategy.is_wildcard:
                matched_cause, match = "*", WILDCARD_MATCH
            elif cause in strategy.for_causes:
                matched_cause, match = cause, confidence
            else:
                continue
            rate = success_rate(history, strategy.name)
            score = strategy.effectiveness * match * rate
            if score > 0:
                ranked.append(RankedStrategy(strategy, score, matched_cause, match, rate))
    for candidate in generated:
        rate = success_rate(history, candidate.strategy.name)
        score = candidate.strategy.effectiveness * candidate.confidence * rate
        if score > 0:
            ranked.append(RankedStrategy(candidate.strategy, score, candidate.cause, candidate.confidence,
                                         rate, last_resort=candidate.last_resort))
    return sorted(ranked, key=lambda r: (r.strategy.lossy, r.last_resort, -r.score))
