"""Moved to :mod:`orchestrator.steps.paths`; kept for existing importers."""

from __future__ import annotations

from orchestrator.steps.paths import ancestors, component_roots, is_within, normalize, within_any

__all__ = ["ancestors", "component_roots", "is_within", "normalize", "within_any"]
