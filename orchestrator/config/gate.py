"""`gate:` section of config.yaml: start gating (``vmrepair gate UNIT`` as a unit's ``ExecStartPre=``,
installed by ``vmrepair watch gate install UNIT``; :mod:`orchestrator.gate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.config.values import AbsolutePath

#: Where the install layout (scripts/install.sh) links the command.
DEFAULT_COMMAND = Path("/usr/local/bin/vmrepair")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GateSettings(_Strict):
    """How ``vmrepair gate`` decides, and where its drop-ins go."""

    on_error: Literal["allow", "refuse"] = Field(
        default="allow",
        description="when the gate itself fails (a vmrepair bug, an unreadable config, its deadline): "
                    "allow the start (a bug in vmrepair must not keep a service down) or refuse it")
    # ExecStartPre= counts against the unit's TimeoutStartSec (90 s by default): the gate must answer
    # well before systemd gives up on the whole start.
    deadline_s: float = Field(default=15.0, gt=0, le=60,
                              description="the gate decides within this time; past it, gate.on_error applies")
    command: AbsolutePath = Field(default=DEFAULT_COMMAND,
                                  description="the vmrepair command the ExecStartPre= line runs")
    unit_dir: AbsolutePath = Field(default=DEFAULT_UNIT_DIR,
                                   description="where `watch gate install` writes "
                                               "UNIT.d/50-vmrepair-gate.conf")
