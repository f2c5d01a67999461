"""Repair: rank the strategies of the applicable playbooks, and execute one strategy's steps in the
troubleshooting VM, recording each step and the operations a fix package must replay on the target."""

from __future__ import annotations

from orchestrator.repair.context import BaselineReader, RepairContext, SymlinkBaseline
from orchestrator.repair.execute import check_applicable, execute_strategy
from orchestrator.repair.log import AttemptLog, CommandRecord, StepResult
from orchestrator.repair.rank import RankedStrategy, rank_strategies

__all__ = ["AttemptLog", "BaselineReader", "CommandRecord", "RankedStrategy", "RepairContext", "StepResult",
           "SymlinkBaseline", "check_applicable", "execute_strategy", "rank_strategies"]
