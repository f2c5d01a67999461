"""Rank the strategies of the applicable playbooks for one diagnosed issue.

For a strategy ``s`` of playbook ``p``, with ``p``'s finding (cause ``c``, confidence ``k``)::

    score(s) = effectiveness(s) * match(s) * posterior(s)

    match(s) = k      when c is in s.for_causes      (a named cause: trust the diagnosis as far as it goes)
             = 0.5    when s.for_causes is ["*"]     (works for any cause, so it never outranks a
                                                       confidently diagnosed specific fix)
             = excluded otherwise

The last factor is the mean of a Beta posterior over the strategy's success rate
(:mod:`orchestrator.fleet.posterior`): its prior comes from the strategy's effectiveness, its outcomes
from the history of earlier attempts (keyed by the strategy's name, unique across playbooks) for this
fault's signature, falling back from the fine signature to coarser ones, then to every outcome of the
strategy, then to the prior alone. Each ranked strategy carries that :class:`Explanation` (the level
used, its counts, the prior), which the report shows as "why". Strategies scoring 0 are dropped. Ties
keep playbook order, then file order of the strategies (the sort is stable).

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

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.diagnose.result import Diagnosis
from orchestrator.fleet.posterior import Explanation, History, explain
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
    #: The posterior mean of its success rate (the history factor of the score).
    success_rate: float
    last_resort: bool = False
    #: Why ``success_rate`` is what it is (None only for one built by hand).
    why: Explanation | None = None

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def playbook(self) -> str:
        return self.strategy.playbook

    def as_dict(self) -> dict[str, object]:
        return {"strategy": self.name, "playbook": self.playbook, "score": round(self.score, 6),
                "cause": self.cause, "match": self.match, "success_rate": round(self.success_rate, 6),
                "effectiveness": self.strategy.effectiveness, "last_resort": self.last_resort,
                "lossy": self.strategy.lossy, "why": None if self.why is None else self.why.as_dict(),
                "why_text": "" if self.why is None else self.why.describe()}


def rank_strategies(
    playbooks: Sequence[Playbook],
    issue: Issue,
    diagnosis: Diagnosis,
    history: History | None = None,
    generated: Sequence[Matched] = (),
) -> list[RankedStrategy]:
    """Every strategy worth trying for ``issue``, best first (see the module docstring for the score).

    ``history`` is ``OutcomeStore.load_for(signature)`` (tallies per signature level), or the plain
    ``(successes, tries)`` per strategy of ``OutcomeStore.load()``, taken as its global level.

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
            why = explain(history, strategy.name, strategy.effectiveness)
            score = strategy.effectiveness * match * why.mean
            if score > 0:
                ranked.append(RankedStrategy(strategy, score, matched_cause, match, why.mean, why=why))
    for candidate in generated:
        why = explain(history, candidate.strategy.name, candidate.strategy.effectiveness)
        score = candidate.strategy.effectiveness * candidate.confidence * why.mean
        if score > 0:
            ranked.append(RankedStrategy(candidate.strategy, score, candidate.cause, candidate.confidence,
                                         why.mean, last_resort=candidate.last_resort, why=why))
    return sorted(ranked, key=lambda r: (r.strategy.lossy, r.last_resort, -r.score))
