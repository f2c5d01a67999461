"""Moved to :mod:`orchestrator.steps.kinds.restore_baseline`; kept for existing importers."""

from __future__ import annotations

from orchestrator.steps.kinds.restore_baseline import run_restore_baseline

__all__ = ["run_restore_baseline"]
