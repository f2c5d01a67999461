"""The step kinds of a strategy: a step is a mapping with exactly one key, its kind::

    - run: {argv: [nginx, -t], timeout_s: 30, ok_exit: [0]}
    - unit: {name: '{unit}', action: restart}
    - restore_baseline: {paths: component, quarantine_added: unit_paths}
    - restore_conffile: {package: nginx-common, paths: ['{offender}']}
    - quarantine: {path: '{offender}', within: [/etc/nginx/sites-enabled]}
    - quarantine_unknown_dropins: {unit: '{unit}'}
    - jsonl_repair: {paths: component}
    - reduce_logs: {min_bytes: 16777216, method: compress}
    - wait_active: {unit: '{unit}', timeout_s: 60, settle_s: 3}
    - fstab_entry: {action: nofail, path: /etc/fstab}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from orchestrator.playbooks.fields import (
    COMPONENT_SCOPE,
    PACKAGE_PATTERN,
    QUARANTINE_ROOT,
    AbsPath,
    AddedRoot,
    Argv,
    JsonlPath,
    PathTemplate,
    RestorePath,
    Strict,
    Token,
    listify,
)


class RunSpec(Strict):
    argv: Argv
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    ok_exit: list[Annotated[int, Field(ge=0, le=255)]] = Field(default_factory=lambda: [0], min_length=1)


class UnitSpec(Strict):
    name: Token | None = Field(default=None, description="unit name or {unit}; omitted for daemon-reload")
    action: Literal["start", "stop", "restart", "reload", "daemon-reload", "reset-failed", "enable",
                    "disable"]

    @model_validator(mode="after")
    def _name_matches_action(self) -> UnitSpec:
        if self.action == "daemon-reload" and self.name is not None:
            raise ValueError("daemon-reload takes no name")
        if self.action != "daemon-reload" and not self.name:
            raise ValueError(f"{self.action} needs a unit name")
        return self


class RestoreBaselineSpec(Strict):
    paths: list[RestorePath] = Field(
        min_length=1, description="what to restore from the target's baseline: paths (templates), or "
        "component (config_paths + unit_paths), component_config, component_units")
    quarantine_added: list[AddedRoot] = Field(
        default_factory=list, description="files not in the baseline are quarantined only under these "
        "directories, or all (anywhere in paths), config_paths, unit_paths (the component's); elsewhere "
        "they are left alone")

    _one_path = field_validator("paths", mode="before", json_schema_input_type=str | list[str])(listify)
    _one_root = field_validator("quarantine_added", mode="before",
                                json_schema_input_type=str | list[str])(listify)


class RestoreConffileSpec(Strict):
    package: Annotated[str, Field(pattern=PACKAGE_PATTERN)]
    paths: list[PathTemplate] = Field(min_length=1)


class QuarantineSpec(Strict):
    path: PathTemplate
    within: list[AbsPath] = Field(
        default_factory=list, description="only when the path is under one of these (else: not "
        "applicable); always also under the component's config_paths/unit_paths")
    quarantine_dir: AbsPath = QUARANTINE_ROOT

    @model_validator(mode="after")
    def _quarantine_root(self) -> QuarantineSpec:
        _check_quarantine_dir(self.quarantine_dir)
        return self


class QuarantineDropinsSpec(Strict):
    unit: Token = "{unit}"
    quarantine_dir: AbsPath = QUARANTINE_ROOT

    @model_validator(mode="after")
    def _quarantine_root(self) -> QuarantineDropinsSpec:
        _check_quarantine_dir(self.quarantine_dir)
        return self


class JsonlRepairSpec(Strict):
    paths: list[JsonlPath] = Field(
        default_factory=lambda: [COMPONENT_SCOPE], min_length=1,
        description="component (all of the component's jsonl_logs), or some of them ({subject})")

    _one_path = field_validator("paths", mode="before", json_schema_input_type=str | list[str])(listify)


class ReduceLogsSpec(Strict):
    min_bytes: int = Field(ge=1)
    method: Literal["compress", "truncate"]
    limit: int = Field(default=50, ge=1, le=1000)


class WaitActiveSpec(Strict):
    unit: Token = "{unit}"
    timeout_s: float = Field(default=60.0, gt=0, le=900)
    settle_s: float = Field(default=3.0, ge=0, le=300, description="must stay active this long")


class FstabEntrySpec(Strict):
    action: Literal["nofail", "comment"] = Field(description=(
        "what to do with the entries that would stop the next boot (missing device, no nofail): "
        "nofail adds nofail,x-systemd.device-timeout=10s to their options; comment comments them out"))
    path: PathTemplate = Field(default="{subject}", description=(
        "the fstab file: must be one of the component's fstab paths"))


def _check_quarantine_dir(value: str) -> None:
    if value != QUARANTINE_ROOT and not value.startswith(QUARANTINE_ROOT + "/"):
        raise ValueError(f"quarantine_dir must be {QUARANTINE_ROOT} or below it")


class RunStepFile(Strict):
    run: RunSpec


class UnitStepFile(Strict):
    unit: UnitSpec


class RestoreBaselineStepFile(Strict):
    restore_baseline: RestoreBaselineSpec


class RestoreConffileStepFile(Strict):
    restore_conffile: RestoreConffileSpec


class QuarantineStepFile(Strict):
    quarantine: QuarantineSpec


class QuarantineDropinsStepFile(Strict):
    quarantine_unknown_dropins: QuarantineDropinsSpec


class JsonlRepairStepFile(Strict):
    jsonl_repair: JsonlRepairSpec


class ReduceLogsStepFile(Strict):
    reduce_logs: ReduceLogsSpec


class WaitActiveStepFile(Strict):
    wait_active: WaitActiveSpec


class FstabEntryStepFile(Strict):
    fstab_entry: FstabEntrySpec


STEP_FILES: dict[str, type[Strict]] = {
    "run": RunStepFile,
    "unit": UnitStepFile,
    "restore_baseline": RestoreBaselineStepFile,
    "restore_conffile": RestoreConffileStepFile,
    "quarantine": QuarantineStepFile,
    "quarantine_unknown_dropins": QuarantineDropinsStepFile,
    "jsonl_repair": JsonlRepairStepFile,
    "reduce_logs": ReduceLogsStepFile,
    "wait_active": WaitActiveStepFile,
    "fstab_entry": FstabEntryStepFile,
}
STEP_KINDS = tuple(STEP_FILES)


def _step_kind(value: Any) -> str | None:
    """The discriminator: a step's only key (or, for a built model, its class)."""
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    for kind, cls in STEP_FILES.items():
        if isinstance(value, cls):
            return kind
    return None


def _check_step_shape(value: Any) -> Any:
    # Runs before the discriminator so the message names the bad key instead of listing every kind's
    # errors (what a plain union would do).
    if isinstance(value, dict):
        if len(value) != 1:
            keys = ", ".join(map(str, value)) or "none"
            raise ValueError(f"a step has exactly one key, its kind (found: {keys}); "
                             f"kinds: {', '.join(STEP_KINDS)}")
        (kind,) = value
        if kind not in STEP_FILES:
            raise ValueError(f"unknown step kind {kind!r}; kinds: {', '.join(STEP_KINDS)}")
    return value


StepFile = Annotated[
    Annotated[RunStepFile, Tag("run")]
    | Annotated[UnitStepFile, Tag("unit")]
    | Annotated[RestoreBaselineStepFile, Tag("restore_baseline")]
    | Annotated[RestoreConffileStepFile, Tag("restore_conffile")]
    | Annotated[QuarantineStepFile, Tag("quarantine")]
    | Annotated[QuarantineDropinsStepFile, Tag("quarantine_unknown_dropins")]
    | Annotated[JsonlRepairStepFile, Tag("jsonl_repair")]
    | Annotated[ReduceLogsStepFile, Tag("reduce_logs")]
    | Annotated[WaitActiveStepFile, Tag("wait_active")]
    | Annotated[FstabEntryStepFile, Tag("fstab_entry")],
    Discriminator(_step_kind),
    BeforeValidator(_check_step_shape),
]
