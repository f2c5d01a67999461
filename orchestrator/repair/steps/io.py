"""Moved to :mod:`orchestrator.steps.io`; kept for existing importers."""

from __future__ import annotations

from orchestrator.steps.io import StepIO

__all__ = ["StepIO"]
