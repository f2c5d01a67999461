"""The typed values stages hand back to the driver. Each is frozen; none knows the next stage."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from orchestrator.agent.api import Manifest
from orchestrator.apply.result import ApplyStatus
from orchestrator.boot.critical import RebootAnalysis
from orchestrator.capture.snapshot import Capture
from orchestrator.diagnose.result import Diagnosis
from orchestrator.fixpkg import FixPackage
from orchestrator.model import Component, Issue
from orchestrator.reboot.executor import RebootOutcome
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.sandbox.protocol import ImportReport, Sandbox
from orchestrator.state.transactions import TxnRecord
from orchestrator.validate.probes import ProbeRunner
from orchestrator.validate.validator import ValidationReport


@dataclass(frozen=True)
class Workbench:
    """The troubleshooting environment of one attempt round, with what was imported into it."""

    sandbox: Sandbox
    probes: ProbeRunner
    capture: Capture
    components: tuple[Component, ...]
    imported: ImportReport
    #: Probes passing in the sandbox with the fault reproduced (the no-regressions baseline).
    passing: frozenset[str] = frozenset()
    #: The other issues of the component (the primary is the most severe, not always the cause).
    related: tuple[Issue, ...] = ()
    #: Seconds one run of every probe took in the sandbox (the reproduction's): validation times its
    #: regression check from it.
    round_s: float = 0.0

    @property
    def component(self) -> Component:
        """The component the issue belongs to (for a disk issue: the first with logs)."""
        return self.components[0]


@dataclass(frozen=True)
class Reproduction:
    reproduced: bool
    summary: str
    #: Probes that pass in the sandbox with the fault reproduced: a repair must keep them passing.
    passing: frozenset[str] = frozenset()
    #: Why it was not reproduced, when that is not simply "the probe passes there".
    reason: str = ""
    #: Seconds the run of every probe took in the sandbox.
    round_s: float = 0.0


@dataclass(frozen=True)
class Winner:
    """The first ranked strategy that passed validation in the sandbox."""

    strategy: str
    playbook: str
    #: The fix-package operations the steps recorded, in the package's wire form (parsed and checked
    #: by :func:`orchestrator.fixpkg.replay.parse_replay_ops` when the package is built).
    replay_ops: tuple[dict[str, Any], ...]
    reboot_required: bool
    diagnosis: Diagnosis
    validation: ValidationReport
    #: The captured paths as the strategy left them in the sandbox (read once, before validation).
    after: Manifest
    #: The validation included a real reboot of the sandbox (and why it was needed).
    rebooted: bool = False
    reboot_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Built:
    """A fix package saved under the state directory, with what its changes mean for the next boot."""

    package: FixPackage
    directory: Path
    reboot: RebootAnalysis


@dataclass(frozen=True)
class Refused:
    """The winner validated but cannot be expressed as a safe package; nothing is applied."""

    reason: str


@dataclass(frozen=True)
class Applied:
    """A package applied to the target as one journalled transaction (or refused/rolled back)."""

    status: ApplyStatus
    txn: TxnRecord
    plan: VerifyPlan
    needs_reboot: bool


class RebootEnd(StrEnum):
    #: Waiting for the operator (prompt) or a maintenance window.
    PENDING = "pending"
    #: Joined a reboot someone else had already scheduled.
    JOINED = "joined"
    #: Requested as automatic, but the scheduler did not release it.
    NOT_DUE = "not_due"
    #: Rebooted and verified after the boot: committed.
    VERIFIED = "verified"
    #: Rebooted and not verified: rolled back (or worse; see ``outcome.status``).
    FAILED = "failed"


@dataclass(frozen=True)
class RebootStep:
    end: RebootEnd
    policy: str
    #: Why the policy differs from the configured one (automatic without a boot fallback).
    note: str | None = None
    #: For PENDING/JOINED: how the reboot will happen.
    how: str = ""
    #: For PENDING/JOINED: when, as the scheduler tells people (``at ... (in 2 h)``, ``next window ...``).
    when: str = ""
    outcome: RebootOutcome | None = None

    @property
    def is_restored(self) -> bool:
        """The fix failed after the boot and the target was put back cleanly."""
        return self.outcome is not None and self.outcome.status in ("rolled_back", "reverted")
