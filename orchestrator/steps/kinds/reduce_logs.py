"""``reduce_logs``: free space by rotating the big log files of the watched components::

    - reduce_logs: {min_bytes: 16777216, method: compress}

Only *log files* under the components' ``log_paths`` are touched: compressed (a verified copy before
truncating) or truncated. Each rotation is replayed on the target, never copied from the VM.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from orchestrator.fixpkg.ops import RotateLogOp
from orchestrator.playbooks.fields import Strict
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import is_within, normalize, within_any
from orchestrator.steps.registry import Step, StepKind, register

#: Files under a log directory that are not plain text logs: journald's binary store (journald manages
#: its own size), login accounting databases, and logs that are already compressed.
SKIPPED_LOGS = ("/var/log/journal/*", "*/wtmp", "*/btmp", "*/lastlog", "*/faillog",
                "*.gz", "*.xz", "*.zst", "*.bz2", "*.zip")


class ReduceLogsSpec(Strict):
    min_bytes: int = Field(ge=1)
    method: Literal["compress", "truncate"]
    limit: int = Field(default=50, ge=1, le=1000)


@dataclass(frozen=True)
class ReduceLogsStep(Step):
    min_bytes: int
    method: Literal["compress", "truncate"]
    limit: int
    kind: ClassVar[str] = "reduce_logs"


def _convert(spec: ReduceLogsSpec) -> ReduceLogsStep:
    return ReduceLogsStep(spec.min_bytes, spec.method, spec.limit)


def run_reduce_logs(step: ReduceLogsStep, ctx: RepairContext, io: StepIO) -> str:
    """Rotate every log file of at least ``min_bytes`` under the watched components' log_paths.

    With a mount point as the issue's subject, only files below it (lexically) are rotated. Each
    rotation is recorded as a replayable ``rotate_log`` operation: the VM holds placeholders of big
    files, so the package must rotate the real file on the target, not copy the VM's.

    Raises:
        StepNotApplicableError: no log_paths are watched, or no log file is big enough.
        TransportError: the agent failed (the attempt fails).
    """
    roots = sorted({r for c in ctx.watched for p in c.log_paths if (r := normalize(p)) is not None})
    if not roots:
        raise io.not_applicable("no watched component declares log_paths")
    mount = normalize(ctx.issue.subject)
    seen: set[str] = set()
    freed = 0
    for big in ctx.agent.big_files(roots, min_bytes=step.min_bytes, limit=step.limit):
        path = normalize(big.path)
        if path is None or path in seen:
            continue
        seen.add(path)
        if not within_any(path, roots):
            # The agent must only answer inside the roots; never act on anything else.
            io.note(f"ignored {big.path!r}: outside log_paths")
            continue
        if (mount is not None and not is_within(path, mount)) or _skipped(path):
            continue
        # A placeholder's content in the VM is synthetic (its real data stayed on the target), so
        # compressing it would only burn minutes of emulated CPU (2 GB hit the step deadline under
        # TCG). Free its space the cheap way here; the replayed op compresses the real file.
        local_method = "truncate" if path in ctx.placeholders else step.method
        result = ctx.agent.rotate_log(path, method=local_method)
        freed += result.freed_bytes
        io.replay_op(RotateLogOp(path, step.method))
        io.note(f"{step.method} {path}: freed {result.freed_bytes} bytes"
                + (f", archive {result.archive}" if result.archive else ""))
    if not io.replay:
        raise io.not_applicable(f"no log file of {step.min_bytes} bytes or more under {', '.join(roots)}")
    done = "compressed" if step.method == "compress" else "truncated"
    return f"{done} {len(io.replay)} log(s), freed {freed} bytes"


def _skipped(path: str) -> bool:
    name = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)
               for pattern in SKIPPED_LOGS)


KIND = register(StepKind(
    name="reduce_logs", order=80, spec=ReduceLogsSpec, step=ReduceLogsStep, convert=_convert,
    run=run_reduce_logs,
    describe=lambda step: f"{step.method} logs of {step.min_bytes} bytes or more",
    templates=lambda step: (),
    replays=frozenset({RotateLogOp.name}),
))
