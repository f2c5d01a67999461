"""The step-kind registry: every kind of playbook step, keyed by its YAML key.

A kind is one module of :mod:`orchestrator.steps.kinds` that ends with ``register(StepKind(...))``. The
registry imports every module of that package the first time it is asked (:func:`kinds`), so the
playbook schema (:mod:`orchestrator.playbooks.step_schema`), the conversion to plain objects
(:mod:`orchestrator.playbooks.convert`), the placeholder checks and the dispatch below are all built
from it: adding a kind means adding its module (and its test, and regenerating the JSON schema).

Layering: this package sits below both :mod:`orchestrator.playbooks` (the document, which imports the
registry to build its step union) and :mod:`orchestrator.repair` (the driver, which dispatches through
it). Kind modules import only the playbook *language* (:mod:`orchestrator.playbooks.fields`,
:mod:`orchestrator.playbooks.placeholders`) and the step runtime of this package, never the loader or
the driver.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from orchestrator.playbooks.placeholders import Template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO


class Step:
    """Base of the frozen plain objects a runner gets (one dataclass per kind, built by its ``convert``).

    ``kind`` is the YAML key; it names the step in logs and reports.
    """

    kind: ClassVar[str]


SpecT = TypeVar("SpecT", bound=BaseModel)
StepT = TypeVar("StepT", bound=Step)


@dataclass(frozen=True)
class StepKind(Generic[SpecT, StepT]):
    """Everything about one step kind, from the YAML mapping to the fix-package operations.

    ``run`` acts on the VM through ``ctx`` and ``io``, returns a one-line summary, and raises
    ``StepNotApplicableError`` (skip the strategy) or ``RepairStepError`` (fail the attempt); agent and
    transport errors are turned into ``RepairStepError`` by the caller. Operations to replay on the
    target go through :meth:`StepIO.replay_op`.
    """

    #: The YAML key (``- unit: {...}``).
    name: str
    #: The pydantic model of the mapping under the key (``extra="forbid"``, frozen).
    spec: type[SpecT]
    #: The plain object the runner gets.
    step: type[StepT]
    convert: Callable[[SpecT], StepT]
    #: The step as the playbook writes it (placeholders unrendered), for logs and reports.
    describe: Callable[[StepT], str]
    #: Every template the step renders (checked up front: all placeholders must have values).
    templates: Callable[[StepT], tuple[Template, ...]]
    run: Callable[[StepT, RepairContext, StepIO], str]
    #: Where the kind appears in lists shown to playbook authors (error messages, the JSON schema's
    #: union): the everyday kinds first. Ties break by name.
    order: int
    #: Fields of ``spec`` that hold templates (a string or a list of strings), for placeholder checks
    #: that can name the exact key.
    template_fields: tuple[str, ...] = ()
    #: Names of the fix-package operations (:mod:`orchestrator.fixpkg.ops`) ``run`` may record; every
    #: one must be replayable (:data:`orchestrator.fixpkg.replay.REPLAYABLE`).
    replays: frozenset[str] = frozenset()
    #: The step cannot run without the target's baseline (checked before the strategy starts).
    needs_baseline: bool = False


_REGISTRY: dict[str, StepKind[Any, Any]] = {}
_KINDS_PACKAGE = "orchestrator.steps.kinds"
_loaded = False


def register(kind: StepKind[SpecT, StepT]) -> StepKind[SpecT, StepT]:
    """Add a kind; called once at the bottom of its module.

    Raises:
        ValueError: the name is taken, or differs from the step class's ``kind``.
    """
    if kind.step.kind != kind.name:
        raise ValueError(f"step kind {kind.name!r}: {kind.step.__name__}.kind is {kind.step.kind!r}")
    if kind.name in _REGISTRY:
        raise ValueError(f"step kind {kind.name!r} is registered twice")
    _REGISTRY[kind.name] = kind
    return kind


def kinds() -> Mapping[str, StepKind[Any, Any]]:
    """Every registered kind, by YAML key, in display order (importing the kind modules once)."""
    global _loaded  # noqa: PLW0603 - one import of the kind modules per process
    if not _loaded:
        package = importlib.import_module(_KINDS_PACKAGE)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{_KINDS_PACKAGE}.{info.name}")
        _loaded = True
    ordered = sorted(_REGISTRY.values(), key=lambda k: (k.order, k.name))
    return MappingProxyType({k.name: k for k in ordered})


def kind_of(step: Step) -> StepKind[Any, Any]:
    """The kind of a plain step object."""
    return kinds()[step.kind]


def run_step(step: Step, ctx: RepairContext, io: StepIO) -> str:
    """Run one step with its kind's runner (see :class:`StepKind` for what it raises)."""
    return kind_of(step).run(step, ctx, io)


def describe(step: Step) -> str:
    """The step as the playbook writes it (placeholders unrendered), for logs and reports."""
    return kind_of(step).describe(step)


def templates(step: Step) -> tuple[Template, ...]:
    """Every template the step renders."""
    return kind_of(step).templates(step)
