"""`reboot:` section of config.yaml: how and when a fix that needs a reboot gets one, and who hears of it."""

from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.boot.window import parse_window
from orchestrator.errors import ConfigError

RebootPolicy = Literal["automatic", "window", "prompt"]
REBOOT_POLICIES: tuple[RebootPolicy, ...] = ("automatic", "window", "prompt")


class _Strict(BaseModel):
    # NaN passes no bound and infinity some: a NaN stability period once failed mid-pipeline.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogNotifierSettings(_Strict):
    kind: Literal["log"] = "log"


class WebhookNotifierSettings(_Strict):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class CommandNotifierSettings(_Strict):
    kind: Literal["command"]
    #: argv of the command; the event is passed as JSON on stdin, never interpolated into the argv.
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=600)


NotifierSettings = LogNotifierSettings | WebhookNotifierSettings | CommandNotifierSettings


class RebootSettings(_Strict):
    #: ``prompt`` by default: rebooting a production host is the operator's call unless configured.
    policy: RebootPolicy = "prompt"
    #: ``automatic``: how long after the notice the reboot happens.
    notice_s: float = Field(default=300.0, ge=0, le=7 * 86400)
    #: ``window``: weekly maintenance windows, rebootmgr style: ``"Sun 03:30 for 1h30"``.
    windows: list[str] = Field(default_factory=lambda: ["Sun 03:30 for 1h30"])
    #: Zone the windows (and `vmrepair reboot schedule HH:MM`) are read in, e.g. ``Europe/Berlin``;
    #: default: this host's local zone. Set it when the targets keep another zone's office hours.
    timezone: str | None = None
    #: How long a rebooted target has to answer SSH and pass its checks again.
    boot_deadline_s: float = Field(default=600.0, gt=0, le=7200)
    #: Apply attempts (strategies) per issue across rollbacks; never a reboot loop.
    attempt_budget: int = Field(default=3, ge=1, le=10)
    notifiers: list[NotifierSettings] = Field(
        default_factory=lambda: list[NotifierSettings]([LogNotifierSettings()]))

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, windows: list[str]) -> list[str]:
        for text in windows:
            try:
                parse_window(text)
            except ConfigError as exc:
                raise ValueError(f"{exc.message}; {exc.remedy}") from exc
        return windows

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {name!r} (use a tz database name such as "
                                 "Europe/Berlin or UTC)") from exc
        return name

    @model_validator(mode="after")
    def _window_policy_has_windows(self) -> RebootSettings:
        if self.policy == "window" and not self.windows:
            raise ValueError("policy `window` needs at least one entry in `windows`")
        return self
