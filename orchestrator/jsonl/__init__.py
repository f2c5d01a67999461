"""Verifying and repairing JSON-lines files on this machine (the audit log, session evidence, any
application's ``*.jsonl``), streaming in bounded memory.

- :func:`verify` (:mod:`.verifier`) classifies every line and, for the audit log, the hash chain;
- :func:`repair` (:mod:`.repairer`) backs up, keeps, salvages, quarantines and rewrites crash-safely,
  or restores a missing or empty file from its newest good rotation (:mod:`.restore`);
- :mod:`.report` holds what they return, and the exit codes of ``vmrepair log verify``.

Targets are checked and repaired by the target agent's ``jsonl_check`` / ``jsonl_repair`` instead;
this package reuses that agent's salvage algorithm rather than having a second one.
"""

from orchestrator.jsonl.repairer import repair
from orchestrator.jsonl.report import (
    EXIT_CODES,
    Problem,
    ProblemKind,
    RepairAction,
    RepairReport,
    VerifyReport,
    VerifyStatus,
)
from orchestrator.jsonl.verifier import verify

__all__ = ["EXIT_CODES", "Problem", "ProblemKind", "RepairAction", "RepairReport", "VerifyReport",
           "VerifyStatus", "repair", "verify"]
