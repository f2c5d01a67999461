"""The steps of a strategy, validated: a step is a mapping with exactly one key, its kind::

    - unit: {name: '{unit}', action: restart}

Each kind declares its own spec in :mod:`orchestrator.steps.kinds`; the union below is built from the
registry (:func:`orchestrator.steps.registry.kinds`), so no kind is named here. Each spec is wrapped in a
one-key model named after it (``UnitSpec`` → ``UnitStepFile``), which is also its name in the JSON schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import BeforeValidator, Discriminator, Tag, create_model

from orchestrator.playbooks.fields import Strict
from orchestrator.steps.registry import StepKind, kinds


def _step_file(kind: StepKind[Any, Any]) -> type[Strict]:
    """``class <Name>StepFile(Strict): <kind>: <Name>Spec`` for one kind."""
    name = kind.spec.__name__.removesuffix("Spec") + "StepFile"
    field: dict[str, Any] = {kind.name: (kind.spec, ...)}
    return create_model(name, __base__=Strict, __module__=__name__, **field)


#: One wrapper model per kind, by YAML key, in display order.
STEP_FILES: dict[str, type[Strict]] = {name: _step_file(kind) for name, kind in kinds().items()}
STEP_KINDS = tuple(STEP_FILES)


def step_spec(step: Strict) -> tuple[str, Strict]:
    """(kind, spec) of a validated step."""
    (kind,) = type(step).model_fields
    spec: Strict = getattr(step, kind)
    return kind, spec


def _step_kind(value: Any) -> str | None:
    """The discriminator: a step's only key (or, for a built model, its class)."""
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    for kind, cls in STEP_FILES.items():
        if isinstance(value, cls):
            return kind
    return None


def _check_step_shape(value: Any) -> Any:
    # Runs before the discriminator so the message names the bad key instead of listing every kind's
    # errors (what a plain union would do).
    if isinstance(value, dict):
        if len(value) != 1:
            keys = ", ".join(map(str, value)) or "none"
            raise ValueError(f"a step has exactly one key, its kind (found: {keys}); "
                             f"kinds: {', '.join(STEP_KINDS)}")
        (kind,) = value
        if kind not in STEP_FILES:
            raise ValueError(f"unknown step kind {kind!r}; kinds: {', '.join(STEP_KINDS)}")
    return value


if TYPE_CHECKING:
    # A union built at run time cannot be spelled for mypy; every member is a Strict model.
    StepFile: TypeAlias = Strict
else:
    StepFile = Annotated[
        Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in STEP_FILES.items())],  # noqa: UP007
        Discriminator(_step_kind),
        BeforeValidator(_check_step_shape),
    ]
