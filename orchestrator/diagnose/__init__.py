"""Diagnosis: run the applicable playbooks' read-only diagnostics in the troubleshooting VM and turn their
output into a cause (with a confidence) and extracted variables, such as the offending file."""

from __future__ import annotations

from orchestrator.diagnose.engine import diagnose
from orchestrator.diagnose.result import Diagnosis, DiagnosticRun, Finding

__all__ = ["Diagnosis", "DiagnosticRun", "Finding", "diagnose"]
