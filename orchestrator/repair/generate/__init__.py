"""Strategy generators: concrete strategies built from the evidence of one issue, for the fault classes
no hand-written playbook covers (and beside those that do).

Interface::

    generate_strategies(situation) -> list[Matched]

A :class:`~orchestrator.repair.generate.situation.Situation` is the issue, its component, the target's
captured state (the capture manifest), the newest healthy baseline (or None) and the troubleshooting
VM, asked only read-only questions. Each family is a module with ``generate(situation) ->
list[Proposal]``; a :class:`~orchestrator.repair.generate.proposal.Proposal` holds its steps in a
playbook's dict form, and becomes a normal :class:`~orchestrator.playbooks.model.Strategy` (playbook
``generated:<family>``, a deterministic safe name ``gen-<action>-<subject>``) through the playbook step
schema, wrapped in a :class:`~orchestrator.repair.rank.Matched` that carries the cause and confidence
the ranking uses in place of a playbook finding.

Families, in the order their proposals are kept when two propose the same steps (smallest change
first)::

    revert       files, symlinks, modes and owners that differ from the baseline (revert.py)
    systemd      masked, disabled, failed units; drop-ins added; unit files changed (units.py)
    state        missing state/log/working directories; modes and owners of data dirs, of packaged
                 files as their package ships them; /tmp etc. (state.py)
    config       added include files; the newest change; the file the config test blames (config_files.py)
    package      half-configured packages, changed packaged files and conffiles (packages.py)
    last-resort  restart, ranked after every other strategy that keeps data (last_resort.py)
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.errors import TransportError
from orchestrator.repair.generate import config_files, last_resort, packages, revert, state, units
from orchestrator.repair.generate.proposal import Proposal, to_matched
from orchestrator.repair.generate.situation import Question, Situation
from orchestrator.repair.rank import Matched

log = logging.getLogger(__name__)

Family = Callable[[Situation], list[Proposal]]
FAMILIES: tuple[tuple[str, Family], ...] = (
    (revert.FAMILY, revert.generate), (units.FAMILY, units.generate), (state.FAMILY, state.generate),
    (config_files.FAMILY, config_files.generate), (packages.FAMILY, packages.generate),
    (last_resort.FAMILY, last_resort.generate),
)

#: The families that declare their questions to the VM (``questions(situation)``), asked ahead.
ASKING: tuple[Callable[[Situation], list[Question]], ...] = (config_files.questions, packages.questions)
#: Questions in flight at once: each is a guest process.
PREFETCH_WORKERS = 4

__all__ = ["FAMILIES", "Matched", "Proposal", "Situation", "generate_strategies", "prefetch"]


def prefetch(situation: Situation, *, related: Sequence[Situation] = ()) -> None:
    """Ask the VM, side by side, the read-only questions the families will ask one after the other
    (each a guest process, about 0.2 s under TCG): the component's units as systemd shows them (one
    call for all), and what the families declare for ``situation`` and each of ``related`` (which
    share its answers: :func:`dataclasses.replace` of it). The answers wait in ``situation``'s cache
    for :func:`generate_strategies`.

    Raises:
        TransportError: the VM cannot be reached.
    """
    asked: dict[tuple[str, ...], float] = {}
    for one in (situation, *related):
        for questions in ASKING:
            for argv, timeout in questions(one):
                asked.setdefault(tuple(argv), timeout)
    with concurrent.futures.ThreadPoolExecutor(max_workers=PREFETCH_WORKERS,
                                               thread_name_prefix="prefetch") as pool:
        pending: list[concurrent.futures.Future[Any]] = [
            pool.submit(situation.show_many, situation.units)]
        pending += [pool.submit(situation.ask, list(argv), timeout=timeout)
                    for argv, timeout in asked.items()]
        for future in pending:
            future.result()


def generate_strategies(situation: Situation,
                        families: Sequence[tuple[str, Family]] = FAMILIES, *,
                        related: Sequence[Situation] = ()) -> list[Matched]:
    """Every strategy the families propose for ``situation``, then for each of ``related`` (the
    component's other issues: the primary issue is the most severe, and its cause may be what another
    issue names, such as the state directory behind a failing health check), converted and
    de-duplicated: a name, or the same steps, proposed twice is kept once (the first proposal's).

    Raises:
        TransportError: the VM cannot be reached (a question that times out or cannot be asked is
            only a missing answer).
    """
    found: list[Matched] = []
    names: set[str] = set()
    seen_steps: set[tuple[object, ...]] = set()
    for family, generate, one in ((f, g, s) for s in (situation, *related) for f, g in families):
        try:
            proposals = generate(one)
        except TransportError:
            raise
        except ValueError as exc:   # untrusted text the family could not make sense of
            log.warning("strategy generator %s failed: %s", family, exc)
            continue
        for proposal in proposals:
            matched = to_matched(proposal)
            if matched is None:
                continue
            steps = tuple(matched.strategy.steps)
            if matched.strategy.name in names or steps in seen_steps:
                continue
            names.add(matched.strategy.name)
            seen_steps.add(steps)
            found.append(matched)
    return found
