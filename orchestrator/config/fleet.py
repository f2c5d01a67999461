"""`fleet:` section of config.yaml: where the daemon picks up signed bundles of other hosts
(:mod:`orchestrator.fleet.pull`). Bundles are verified exactly as `vmrepair fleet import` does."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.config.values import AbsolutePath


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FleetSettings(_Strict):
    pull_dir: AbsolutePath | None = Field(
        default=None, description="directory whose *.bundle files the daemon imports (signed by trusted "
                                  "keys only); unset: no pulling")
    pull_interval_s: float = Field(default=3600.0, ge=60, le=7 * 86400,
                                   description="how often the daemon looks in pull_dir")
