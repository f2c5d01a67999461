"""Strategy outcomes that steer ranking: every validation in a VM, every verification on a target, and
every verification after the target rebooted.

Each outcome is recorded for a stage (:data:`STAGES`) and, when the caller knows it, for the fault's
signature (:mod:`orchestrator.fleet.signature`): its three level ids and its readable parts. Outcomes
recorded without one (all of them before signatures existed) count only in the global tally by name.

``load()`` gives, per strategy, (successes, tries) over everything; ``load_for(signature)`` gives, per
strategy, the same tally at each signature level and per stage (with the counts imported from
trusted fleet bundles added), which the ranker turns into a Beta
posterior (:mod:`orchestrator.fleet.posterior`). Every stage counts in the tallies: a verification
failure on a real target counts like a failed validation (the strategy fixed the VM but not the host).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.state.db import StateDb
from orchestrator.timestamps import now_timestamp

if TYPE_CHECKING:
    from orchestrator.fleet.signature import FaultSignature

#: Validated in the troubleshooting VM (the attempts stage).
STAGE_VM = "vm"
#: Verified on the real target right after the fix was applied (the apply stage).
STAGE_TARGET = "target"
#: Verified on the real target after it rebooted with the fix (the reboot executor).
STAGE_REBOOT = "reboot"
STAGES: tuple[str, ...] = (STAGE_VM, STAGE_TARGET, STAGE_REBOOT)
#: The level of :meth:`OutcomeStore.load_for` that counts every outcome of a strategy, signed or not.
GLOBAL = "global"

#: (successes, tries)
Tally = tuple[int, int]


@dataclass(frozen=True)
class StrategyRecord:
    """What the store knows of one strategy for one fault signature.

    ``levels`` maps ``fine``/``medium``/``coarse`` (outcomes of faults with the same signature id at that
    level) and :data:`GLOBAL` to a tally; ``stages`` maps each stage to the tally of the fine level
    only: the concordance of VM, target and reboot for exactly this fault.
    """

    levels: Mapping[str, Tally] = field(default_factory=dict)
    stages: Mapping[str, Tally] = field(default_factory=dict)

    def level(self, name: str) -> Tally:
        return self.levels.get(name, (0, 0))

    def stage(self, name: str) -> Tally:
        return self.stages.get(name, (0, 0))


@dataclass(frozen=True)
class StageTally:
    """The outcomes of one strategy at one stage for one fault (fine signature id, '' for none)."""

    signature: str
    #: The signature's readable parts (``component_kind`` ...; empty for outcomes without one).
    parts: Mapping[str, str]
    strategy: str
    stage: str
    successes: int
    tries: int


class OutcomeStore:
    """Raises (every method): StateError / StateCorruptError from the store."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def load(self) -> dict[str, Tally]:
        rows = self.db.query("SELECT strategy, SUM(succeeded), COUNT(*) FROM outcomes GROUP BY strategy")
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def load_for(self, signature: FaultSignature | None) -> dict[str, StrategyRecord]:
        """Per strategy, its tallies at every level of ``signature`` and per stage (fine level); a
        strategy that only has outcomes of other faults has only its :data:`GLOBAL` tally. Without a
        signature, every strategy has only its global tally."""
        levels: dict[str, dict[str, Tally]] = {name: {GLOBAL: tally} for name, tally in self.load().items()}
        stages: dict[str, dict[str, Tally]] = {}
        if signature is not None:
            # This host's outcomes, plus the counts that bundles of trusted, unrevoked fleet keys carry
            # (orchestrator/fleet/imports.py keeps one snapshot per key): another host's record of the
            # same fault ranks a strategy here exactly as our own would. A shared strategy still has to
            # validate in this host's troubleshooting VM before anything is applied.
            rows = self.db.query(
                "SELECT strategy, stage, signature_fine = ?, signature_medium = ?, SUM(s), SUM(n) FROM ("
                " SELECT strategy, stage, signature_fine, signature_medium, succeeded AS s, 1 AS n"
                " FROM outcomes WHERE signature_coarse = ?"
                " UNION ALL SELECT o.strategy, o.stage, o.signature_fine, o.signature_medium, o.successes,"
                " o.tries FROM imported_outcomes o JOIN fleet_keys k ON k.key_id = o.key_id"
                " WHERE k.revoked_at IS NULL AND o.signature_coarse = ?) GROUP BY 1, 2, 3, 4",
                (signature.fine, signature.medium, signature.coarse, signature.coarse))
            for strategy, stage, is_fine, is_medium, successes, tries in rows:
                tally = (int(successes), int(tries))
                mine = levels.setdefault(str(strategy), {})
                _count(mine, "coarse", tally)   # every row: the query selects the coarse signature
                if is_medium:
                    _count(mine, "medium", tally)
                if is_fine:
                    _count(mine, "fine", tally)
                    _count(stages.setdefault(str(strategy), {}), str(stage), tally)
        return {name: StrategyRecord(levels[name], stages.get(name, {})) for name in levels}

    def stage_tallies(self) -> list[StageTally]:
        """Every (fine signature, strategy, stage) with its tally: the concordance of the whole store.
        Outcomes recorded without a signature come under the fine id ''."""
        rows = self.db.query(
            "SELECT signature_fine, MAX(signature_parts), strategy, stage, SUM(succeeded), COUNT(*)"
            " FROM outcomes GROUP BY signature_fine, strategy, stage ORDER BY 1, 3, 4")
        return [StageTally(str(r[0]), _parts(str(r[1])), str(r[2]), str(r[3]), int(r[4]), int(r[5]))
                for r in rows]

    def signature_of_txn(self, txn_id: str) -> FaultSignature | None:
        """The signature an earlier outcome of transaction ``txn_id`` was recorded with (the apply
        stage records one), so the verification after a reboot, perhaps in another process, counts for
        the same fault. None when no outcome of it carries one."""
        from orchestrator.fleet.signature import FaultSignature  # the store stays below fleet/

        rows = self.db.query("SELECT signature_parts FROM outcomes WHERE txn_id = ? AND signature_fine != ''"
                             " ORDER BY id DESC LIMIT 1", (txn_id,))
        parts = _parts(str(rows[0][0])) if rows else {}
        if set(parts) != set(_PART_KEYS):
            return None   # none, or a row edited by hand: the outcome still counts, by name
        return FaultSignature(**parts)

    def record(self, strategy: str, *, succeeded: bool, stage: str = STAGE_VM, target: str = "",
               txn_id: str | None = None, signature: FaultSignature | None = None) -> None:
        ids = ("", "", "", "{}") if signature is None else (
            signature.fine, signature.medium, signature.coarse,
            json.dumps({key: getattr(signature, key) for key in _PART_KEYS}, sort_keys=True))
        with self.db.write() as tx:
            tx.execute("INSERT INTO outcomes (strategy, succeeded, stage, target, txn_id, at, signature_fine,"
                       " signature_medium, signature_coarse, signature_parts) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                       " ?, ?)", (strategy, int(succeeded), stage, target, txn_id, now_timestamp(), *ids))


#: The fields of FaultSignature kept in ``signature_parts`` (all of them: the fine level's parts).
_PART_KEYS = ("component_kind", "issue_kind", "cause", "evidence_pattern", "os_release")


def _parts(text: str) -> dict[str, str]:
    """The stored readable parts of a signature; a value that does not parse (edited by hand) is none."""
    try:
        parts = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(parts, dict):
        return {}
    return {str(k): str(v) for k, v in parts.items() if k in _PART_KEYS}


def _count(tallies: dict[str, Tally], key: str, tally: Tally) -> None:
    successes, tries = tallies.get(key, (0, 0))
    tallies[key] = (successes + tally[0], tries + tally[1])
