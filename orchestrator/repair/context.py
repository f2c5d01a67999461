"""Moved to :mod:`orchestrator.steps.context` (the steps act through it); kept for existing importers."""

from __future__ import annotations

from orchestrator.steps.context import (
    DEFAULT_STEP_TIMEOUT_S,
    BaselineReader,
    RepairContext,
    SymlinkBaseline,
    default_stamp,
)

__all__ = ["DEFAULT_STEP_TIMEOUT_S", "BaselineReader", "RepairContext", "SymlinkBaseline", "default_stamp"]
