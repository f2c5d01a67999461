"""Every module of this package is one step kind (or a small family) and registers itself with
:func:`orchestrator.steps.registry.register`; the registry imports them all, so nothing else lists them.

To add a kind: a module here with its ``...Spec`` (pydantic, named ``<Name>Spec``: the JSON schema calls
its wrapper ``<Name>StepFile``), its frozen :class:`~orchestrator.steps.registry.Step` dataclass, and a
``register(StepKind(...))`` call; a test beside the others; then regenerate the shipped JSON schema.
"""
