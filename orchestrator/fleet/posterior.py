"""How likely a strategy is to fix a fault, from the playbook's word and the fleet's record.

Per (signature, strategy), a Beta posterior over the strategy's success rate::

    prior      Beta(alpha0, beta0),  alpha0 = 1 + w * eff,  beta0 = 1 + w * (1 - eff)
    posterior  Beta(alpha0 + successes, beta0 + tries - successes)
    mean       (alpha0 + successes) / (alpha0 + beta0 + tries)

``eff`` is the strategy's effectiveness as its playbook (or generator) declares it, and ``w`` the prior
weight (:data:`PRIOR_WEIGHT`): how many outcomes the declaration is worth. With w = 2 the declaration
moves the mean of a strategy without history from 0.5 halfway towards ``eff``, and three outcomes of
the fleet already outweigh it: playbook authors guess, outcomes measure.

The tally used is that of the finest level with at least one try: the fault's fine signature, then its
medium and coarse ones, then every outcome of the strategy by name (``global``: also the outcomes
recorded before signatures existed), then none (``prior``). A coarser level is only a stand-in: a
strategy that failed for another cause must not count as if it had failed for this one whenever the
fine level has data of its own. Counts that make no sense (more successes than tries, negatives) are
clamped, not trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.fleet.signature import LEVELS
from orchestrator.state.outcomes import GLOBAL, StrategyRecord

#: Outcomes the declared effectiveness is worth (see the module docstring).
PRIOR_WEIGHT = 2.0
#: The level of an explanation without any outcome: the prior alone.
PRIOR = "prior"
#: The fallback order, finest first.
FALLBACK: tuple[str, ...] = (*LEVELS, GLOBAL)

#: What ranking accepts as history: records per strategy from ``OutcomeStore.load_for``, or the plain
#: (successes, tries) per strategy of ``OutcomeStore.load`` (taken as the global level).
History = Mapping[str, StrategyRecord] | Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class Explanation:
    """Why a strategy's history factor is what it is: which level's outcomes, and the prior."""

    level: str
    successes: int
    tries: int
    prior_alpha: float
    prior_beta: float
    mean: float

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "successes": self.successes, "tries": self.tries,
                "prior_alpha": round(self.prior_alpha, 4), "prior_beta": round(self.prior_beta, 4),
                "mean": round(self.mean, 6)}

    def describe(self) -> str:
        """One line for the report: ``fine 3/4 ok, prior Beta(2.8, 1.2), mean 0.73``."""
        seen = "no outcomes" if self.level == PRIOR else f"{self.level} {self.successes}/{self.tries} ok"
        return f"{seen}, prior Beta({self.prior_alpha:g}, {self.prior_beta:g}), mean {self.mean:.2f}"


def explain(history: History | None, name: str, effectiveness: float,
            weight: float = PRIOR_WEIGHT) -> Explanation:
    """The posterior mean of strategy ``name`` with its explanation (module docstring). Never raises."""
    eff = min(max(effectiveness, 0.0), 1.0)
    alpha, beta = 1 + weight * eff, 1 + weight * (1 - eff)
    level, (successes, tries) = _tally(history, name)
    tries = max(0, tries)
    successes = min(max(0, successes), tries)
    if tries == 0:
        level = PRIOR
    return Explanation(level, successes, tries, round(alpha, 6), round(beta, 6),
                       (alpha + successes) / (alpha + beta + tries))


def _tally(history: History | None, name: str) -> tuple[str, tuple[int, int]]:
    entry = (history or {}).get(name)
    if entry is None:
        return PRIOR, (0, 0)
    if not isinstance(entry, StrategyRecord):
        return GLOBAL, entry
    for level in FALLBACK:
        tally = entry.level(level)
        if tally[1] > 0:
            return level, tally
    return PRIOR, (0, 0)
