"""Moved to :mod:`orchestrator.steps` (one module per kind, registered in
:mod:`orchestrator.steps.registry`); the modules left here only keep existing importers working."""
