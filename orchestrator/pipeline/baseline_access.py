"""The target's latest baseline (if any), as the reader repair steps use."""

from __future__ import annotations

from typing import Any

from orchestrator.baseline.store import load_latest_baseline
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from orchestrator.targets.spec import TargetSpec


def baseline_reader(settings: Settings, spec: TargetSpec) -> Any | None:
    """None when the target has no (readable) baseline: baseline strategies are then skipped."""
    try:
        return load_latest_baseline(settings, spec.slug)
    except StateError:
        return None
