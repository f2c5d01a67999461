"""Repair: rank the strategies of the applicable playbooks, and execute one strategy's steps in the
troubleshooting VM, recording each step and the operations a fix package must replay on the target.

The steps themselves (one module per kind, and what they act through) live in :mod:`orchestrator.steps`.
"""

from __future__ import annotations

from orchestrator.repair.execute import check_applicable, execute_strategy
from orchestrator.repair.log import AttemptLog, StepResult
from orchestrator.repair.rank import RankedStrategy, rank_strategies
from orchestrator.steps.context import BaselineReader, RepairContext, SymlinkBaseline
from orchestrator.steps.io import CommandRecord

__all__ = ["AttemptLog", "BaselineReader", "CommandRecord", "RankedStrategy", "RepairContext", "StepResult",
           "SymlinkBaseline", "check_applicable", "execute_strategy", "rank_strategies"]
