"""Moved to :mod:`orchestrator.steps.kinds.restore_conffile`; kept for existing importers."""

from __future__ import annotations

from orchestrator.steps.kinds.restore_conffile import APT_ARCHIVES

__all__ = ["APT_ARCHIVES"]
