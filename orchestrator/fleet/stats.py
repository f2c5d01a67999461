"""Concordance per fault signature: does what validated in a VM hold on the targets, and after their
reboots? The evidence that the troubleshooting VM predicts the host.

For each fine signature (shown by its medium-level parts, which people read: component kind, issue kind,
cause) and each strategy tried for it: validated in a VM, verified on the target after applying, and
verified after the target's reboot, each as (successes, tries). Outcomes recorded before signatures
existed are grouped under one entry without a signature, so nothing the store holds is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.state.outcomes import STAGES, StageTally, Tally

#: What a signature without readable parts (outcomes recorded before signatures) is shown as.
UNSIGNED_LABEL = "(recorded without a signature)"


@dataclass(frozen=True)
class StrategyConcordance:
    strategy: str
    #: (successes, tries) per stage (:data:`orchestrator.state.outcomes.STAGES`), (0, 0) when never.
    stages: Mapping[str, Tally]

    @property
    def tries(self) -> int:
        return sum(tries for _, tries in self.stages.values())

    def as_dict(self) -> dict[str, object]:
        return {"strategy": self.strategy,
                **{stage: {"succeeded": s, "tries": n} for stage, (s, n) in self.stages.items()}}


@dataclass(frozen=True)
class SignatureStats:
    #: The fine signature id ('' for outcomes recorded without one).
    signature: str
    parts: Mapping[str, str]
    strategies: tuple[StrategyConcordance, ...]

    @property
    def label(self) -> str:
        """``nginx / config_invalid / config_invalid``: the medium level's parts."""
        if not self.signature:
            return UNSIGNED_LABEL
        return " / ".join(self.parts.get(key, "?") for key in ("component_kind", "issue_kind", "cause"))

    @property
    def tries(self) -> int:
        return sum(s.tries for s in self.strategies)

    def as_dict(self) -> dict[str, object]:
        return {"signature": self.signature, "label": self.label, "parts": dict(self.parts),
                "strategies": [s.as_dict() for s in self.strategies]}


def concordance(tallies: Sequence[StageTally]) -> list[SignatureStats]:
    """``OutcomeStore.stage_tallies()`` grouped per signature and strategy; the most tried signatures
    first, and within one the most tried strategies (ties by name). Never raises."""
    grouped: dict[str, dict[str, dict[str, Tally]]] = {}
    parts: dict[str, Mapping[str, str]] = {}
    for row in tallies:
        parts.setdefault(row.signature, row.parts)
        stages = grouped.setdefault(row.signature, {}).setdefault(row.strategy, {})
        s, n = stages.get(row.stage, (0, 0))
        stages[row.stage] = (s + row.successes, n + row.tries)
    out = []
    for signature, strategies in grouped.items():
        rows = [StrategyConcordance(name, {stage: found.get(stage, (0, 0)) for stage in _stages(found)})
                for name, found in strategies.items()]
        rows.sort(key=lambda r: (-r.tries, r.strategy))
        out.append(SignatureStats(signature, parts[signature], tuple(rows)))
    out.sort(key=lambda s: (-s.tries, s.label, s.signature))
    return out


def shown(tally: Tally) -> str:
    """``3/4`` (successes of tries), ``—`` when never tried at that stage."""
    successes, tries = tally
    return f"{successes}/{tries}" if tries else "—"


def _stages(found: Mapping[str, Tally]) -> tuple[str, ...]:
    """The three stages of the issue, then any other a store may hold (an older or newer release's)."""
    return (*STAGES, *sorted(set(found) - set(STAGES)))
