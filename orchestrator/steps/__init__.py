"""Playbook steps: one module per kind in :mod:`orchestrator.steps.kinds` (its YAML schema, its plain
object, its conversion, its description, its runner and the fix-package operations it records), the
registry they add themselves to (:mod:`orchestrator.steps.registry`), and what a step acts through in
the troubleshooting VM: :class:`~orchestrator.steps.context.RepairContext`,
:class:`~orchestrator.steps.io.StepIO` and the lexical path checks of :mod:`orchestrator.steps.paths`.

The playbook loader builds its step union from the registry, and the repair driver dispatches through
it; neither names a kind.
"""
