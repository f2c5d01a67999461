"""Validation: did a repair attempt in the VM really fix the issue, durably and without side effects?

:class:`~orchestrator.validate.validator.Validator` runs four layers (resolved, stable, no regressions,
core features) and returns a :class:`~orchestrator.validate.results.ValidationReport`. Guest checks use
pytest-testinfra's modules over our own transport (:mod:`orchestrator.validate.backend`).
"""

from __future__ import annotations

from orchestrator.validate.probes import ProbeRunner
from orchestrator.validate.results import (
    CheckResult,
    LayerName,
    LayerReport,
    LayerStatus,
    ValidationReport,
)
from orchestrator.validate.validator import Validator

__all__ = [
    "CheckResult",
    "LayerName",
    "LayerReport",
    "LayerStatus",
    "ProbeRunner",
    "ValidationReport",
    "Validator",
]
