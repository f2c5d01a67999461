"""A generator's proposal, and how it becomes a normal :class:`~orchestrator.playbooks.model.Strategy`.

A proposal's steps are written in the dict form of a playbook (``{"restore_baseline": {"paths": [P]}}``)
and go through the same step schema and conversion as a hand-written playbook's steps
(:mod:`orchestrator.playbooks.step_schema`, :mod:`orchestrator.playbooks.convert`), so a generated step
is validated exactly like a written one. A proposal that uses a step kind this build does not have (one
still on its way, like ``dpkg_configure``) or that does not validate (a path from the target that is
not a clean absolute path) is dropped, never an error: the other strategies are still worth trying.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.playbooks.convert import to_step
from orchestrator.playbooks.model import Strategy
from orchestrator.playbooks.step_schema import StepFile
from orchestrator.repair.rank import Matched
from orchestrator.steps.registry import Step, kinds

log = logging.getLogger(__name__)

#: Every generated strategy's playbook is ``generated:<family>``.
PLAYBOOK_PREFIX = "generated:"
#: Names as playbooks spell them (fields.NAME_PATTERN), so they are safe in every store and report.
MAX_NAME = 64
_UNSAFE = re.compile(r"[^a-z0-9_.]+")
_PLAIN = re.compile(r"/?[a-z0-9_.-]+(/[a-z0-9_.-]+)*")
_STEP = TypeAdapter(StepFile)

RawStep = Mapping[str, Any]


@dataclass(frozen=True)
class Proposal:
    """One concrete strategy a family proposes, before validation."""

    family: str
    #: What it does, short: ``revert-file``, ``unmask`` ... (the name's first part).
    action: str
    #: What it acts on: a path, a unit, a package (the name's second part).
    subject: str
    #: What it does and which evidence produced it, for the report.
    description: str
    steps: tuple[RawStep, ...]
    effectiveness: float
    cause: str
    confidence: float
    last_resort: bool = False

    @property
    def name(self) -> str:
        return strategy_name(self.action, self.subject)


def strategy_name(action: str, subject: str) -> str:
    """``gen-<action>-<subject>`` made safe: lower case, ``[a-z0-9_.-]``, at most 64 characters. When
    that loses anything (case, other characters, length) a hash of the exact subject is appended, so
    two subjects never share a name and the same subject always gets the same one (history keys by it)."""
    slug = _UNSAFE.sub("-", subject.lower()).strip("-.") or "x"
    name = f"gen-{action}-{slug}"
    # Within one action subjects are all paths, or all names (units, packages): "/" -> "-" is
    # reversible for a path without "-", and a name without "/" is kept as it is.
    plain = _PLAIN.fullmatch(subject) is not None and ("/" not in subject or "-" not in subject)
    exact = plain and slug == subject.strip("/").replace("/", "-") and len(name) <= MAX_NAME
    if exact:
        return name
    digest = hashlib.sha256(f"{action}\0{subject}".encode()).hexdigest()[:8]
    # The end of a path says most (the file's name): keep the tail when it does not fit.
    room = MAX_NAME - len(f"gen-{action}-") - len(digest) - 1
    return f"gen-{action}-{slug[-room:].strip('-.') or 'x'}-{digest}"


def literal(text: str) -> str:
    """``text`` as a template that renders to itself (``{`` and ``}`` doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def to_steps(raw: Sequence[RawStep]) -> tuple[Step, ...] | None:
    """The steps validated and converted like a playbook's; None when one uses a kind that is not
    registered or does not validate (logged)."""
    steps: list[Step] = []
    registered = kinds()
    for item in raw:
        kind = next(iter(item), "") if len(item) == 1 else ""
        if kind not in registered:
            log.debug("generated step %r: kind %r is not registered here", dict(item), kind)
            return None
        try:
            steps.append(to_step(_STEP.validate_python(dict(item))))
        except ValidationError as exc:
            log.warning("generated step %r does not validate: %s", dict(item), exc.errors()[0]["msg"])
            return None
    return tuple(steps)


def to_matched(proposal: Proposal) -> Matched | None:
    """The proposal as a strategy with its own match; None when its steps do not convert."""
    steps = to_steps(proposal.steps)
    if steps is None or not steps:
        return None
    strategy = Strategy(
        name=proposal.name, description=proposal.description, for_causes=(proposal.cause,),
        effectiveness=proposal.effectiveness, reboot_required=False, steps=steps,
        playbook=PLAYBOOK_PREFIX + proposal.family,
    )
    return Matched(strategy, proposal.cause, proposal.confidence, last_resort=proposal.last_resort)
