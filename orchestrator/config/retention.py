"""`retention:` section of config.yaml: how long sessions, backups and fix packages are kept
(:mod:`orchestrator.prune` decides, `vmrepair prune` and the daemon's prune job act)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Ten years: a longer age is a typo, and day counts that large overflow datetime arithmetic.
MAX_DAYS = 3650


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RetentionSettings(_Strict):
    """Ages after which state is pruned. A backup whose fix can still be rolled back, and anything
    of a run in progress, is kept whatever its age."""

    enabled: bool = Field(default=True, description="prune periodically in the daemon (`vmrepair prune` "
                                                    "works either way)")
    sessions_days: float = Field(default=90, gt=0, le=MAX_DAYS,
                                 description="sessions (evidence and reports) older than this are removed")
    backups_days: float = Field(default=90, gt=0, le=MAX_DAYS,
                                description="backups of fixes that can no longer be rolled back "
                                            "(rolled back, aborted) older than this are removed")
    packages_days: float = Field(default=90, gt=0, le=MAX_DAYS,
                                 description="fix packages older than this are removed")
    interval_s: float = Field(default=86400.0, ge=60, le=30 * 86400,
                              description="how often the daemon prunes")
