"""Plain typed playbooks, converted from the validated files (:mod:`orchestrator.playbooks.schema`).

Regexes are compiled and templates parsed once here; the rest of the pipeline never sees pydantic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from orchestrator.model import IssueKind
from orchestrator.playbooks.placeholders import Template

#: The cause of a diagnosis no rule explains; only ``for_causes: ["*"]`` strategies apply to it.
UNKNOWN_CAUSE = "unknown"
WILDCARD = "*"


@dataclass(frozen=True)
class Diagnostic:
    name: str
    argv: tuple[Template, ...]
    timeout_s: float


@dataclass(frozen=True)
class Rule:
    diagnostic: str
    cause: str
    confidence: float
    matches: re.Pattern[str] | None = None
    not_matches: re.Pattern[str] | None = None
    exit_status: int | None = None
    #: (variable, regex with one group) searched in the same diagnostic's output.
    extract: tuple[tuple[str, re.Pattern[str]], ...] = ()


# -- steps (one class per kind; ``kind`` is the YAML key) ----------------------------------------

@dataclass(frozen=True)
class RunStep:
    argv: tuple[Template, ...]
    timeout_s: float
    ok_exit: frozenset[int]
    kind: ClassVar[str] = "run"


@dataclass(frozen=True)
class UnitStep:
    action: str
    name: Template | None
    kind: ClassVar[str] = "unit"


@dataclass(frozen=True)
class RestoreBaselineStep:
    #: Keywords for the component's own paths: component, component_config, component_units.
    scopes: tuple[str, ...]
    paths: tuple[Template, ...]
    #: Directories under which files missing from the baseline are quarantined, or the keywords
    #: all (anywhere in the restored paths), config_paths, unit_paths (the component's).
    quarantine_added: tuple[str, ...]
    kind: ClassVar[str] = "restore_baseline"


@dataclass(frozen=True)
class RestoreConffileStep:
    package: str
    paths: tuple[Template, ...]
    kind: ClassVar[str] = "restore_conffile"


@dataclass(frozen=True)
class QuarantineStep:
    path: Template
    within: tuple[str, ...]
    quarantine_dir: str
    kind: ClassVar[str] = "quarantine"


@dataclass(frozen=True)
class QuarantineUnknownDropinsStep:
    unit: Template
    quarantine_dir: str
    kind: ClassVar[str] = "quarantine_unknown_dropins"


@dataclass(frozen=True)
class JsonlRepairStep:
    #: Every jsonl log of the component (``paths: component``), plus any named in ``paths``.
    all_logs: bool
    paths: tuple[Template, ...]
    kind: ClassVar[str] = "jsonl_repair"


@dataclass(frozen=True)
class ReduceLogsStep:
    min_bytes: int
    method: Literal["compress", "truncate"]
    limit: int
    kind: ClassVar[str] = "reduce_logs"


@dataclass(frozen=True)
class WaitActiveStep:
    unit: Template
    timeout_s: float
    settle_s: float
    kind: ClassVar[str] = "wait_active"


@dataclass(frozen=True)
class FstabEntryStep:
    #: nofail: make the entries that would stop the boot optional; comment: comment them out.
    action: Literal["nofail", "comment"]
    path: Template
    kind: ClassVar[str] = "fstab_entry"


Step = (RunStep | UnitStep | RestoreBaselineStep | RestoreConffileStep | QuarantineStep
        | QuarantineUnknownDropinsStep | JsonlRepairStep | ReduceLogsStep | WaitActiveStep
        | FstabEntryStep)


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    for_causes: tuple[str, ...]
    effectiveness: float
    reboot_required: bool
    steps: tuple[Step, ...]
    #: Name of the playbook that defines it.
    playbook: str
    #: Discards data: ranked after every strategy that does not.
    lossy: bool = False

    @property
    def is_wildcard(self) -> bool:
        return self.for_causes == (WILDCARD,)


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    components: tuple[str, ...]
    kinds: frozenset[IssueKind]
    diagnostics: tuple[Diagnostic, ...]
    rules: tuple[Rule, ...]
    strategies: tuple[Strategy, ...]
    #: The file it was loaded from (for messages).
    source: str

    def applies_to(self, component: str, kind: IssueKind) -> bool:
        return kind in self.kinds and (self.components == (WILDCARD,) or component in self.components)
