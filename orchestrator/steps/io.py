"""What a step uses to act on the VM: commands that are recorded as they run, quarantine moves, and
the errors a step raises (failed → the attempt fails; not applicable → the strategy is skipped)."""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import CommandTimeoutError, RepairStepError, StepNotApplicableError, TransportError
from orchestrator.fixpkg.ops import Operation, op_to_dict
from orchestrator.session.store import cap_text
from orchestrator.steps.context import RepairContext
from orchestrator.steps.paths import ancestors
from orchestrator.transport.base import CommandResult

#: Bytes of each stream kept from a step's command.
MAX_STEP_OUTPUT = 256 * 1024
#: Characters of a command's output kept in the attempt log and in error messages.
MAX_LOGGED_OUTPUT = 4096


@dataclass(frozen=True)
class CommandRecord:
    """One command a step ran in the VM; ``output`` is capped, control-character-safe text."""

    argv: tuple[str, ...]
    exit_status: int | None
    output: str
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "exit_status": self.exit_status, "output": self.output,
                "duration_s": round(self.duration_s, 3)}


#: How find(1)'s %y names a path's kind, as the refusals have always said it.
FIND_KINDS = {"dir": "d", "file": "f", "symlink": "l"}


class StepIO:
    """Runs the commands of one step and collects what the attempt log and the fix package need."""

    def __init__(self, ctx: RepairContext, strategy: str, label: str) -> None:
        self.ctx = ctx
        self.strategy = strategy
        self.label = label
        self.commands: list[CommandRecord] = []
        self.notes: list[str] = []
        self.replay: list[dict[str, Any]] = []
        self.unreplayable: list[str] = []

    # -- errors -----------------------------------------------------------------------------------
    def fail(self, message: str) -> RepairStepError:
        return RepairStepError(f"{self.strategy}: {self.label}: {message}", strategy=self.strategy,
                               step=self.label)

    def not_applicable(self, message: str) -> StepNotApplicableError:
        return StepNotApplicableError(f"{self.strategy}: {self.label}: {message}",
                                      strategy=self.strategy, step=self.label)

    def note(self, text: str) -> None:
        self.notes.append(cap_text(text, 1024))

    def replay_op(self, op: Operation) -> None:
        """Record an operation the fix package replays on the target (in the JSON form of
        :mod:`orchestrator.fixpkg.ops`); kept only if the step succeeds."""
        self.replay.append(op_to_dict(op))

    # -- commands ---------------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        ok_exit: Collection[int] = (0,),
        check: bool = True,
        record: bool = True,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``argv`` in the VM (never through a shell) and record it; ``stdin`` is not recorded.

        Raises:
            RepairStepError: it timed out, could not run, or (with ``check``) exited outside ``ok_exit``.
        """
        limit = timeout if timeout is not None else self.ctx.step_timeout_s
        began = self.ctx.clock()
        try:
            result = self.ctx.transport.run(argv, timeout=limit, max_output=MAX_STEP_OUTPUT, stdin=stdin)
        except CommandTimeoutError as exc:
            self._record(tuple(argv), None, "", self.ctx.clock() - began)
            raise self.fail(f"{list(argv)!r} did not finish within {limit:g} s") from exc
        except TransportError as exc:
            raise self.fail(f"{list(argv)!r} could not run: {exc.message}") from exc
        output = combined_output(result)
        if record:
            self._record(result.argv, result.exit_status, output, self.ctx.clock() - began)
        if check and result.exit_status not in ok_exit:
            raise self.fail(f"{list(argv)!r} exited {result.exit_status}: {output.strip()[-1500:]}")
        return result

    def _record(self, argv: tuple[str, ...], status: int | None, output: str, duration: float) -> None:
        self.commands.append(CommandRecord(argv, status, output, duration))

    def record_result(self, result: CommandResult, duration: float) -> None:
        """Record a command that ran with ``record=False`` (the last of a polling loop)."""
        self._record(result.argv, result.exit_status, combined_output(result), duration)

    # -- file-system guards -----------------------------------------------------------------------
    def require_real_dirs(self, paths: Sequence[str], roots: Sequence[str]) -> None:
        """Refuse to act on ``paths`` when a directory between their root and them is a symlink in the
        VM: rename(2) and open(2) follow those, so a lexically-safe path could land outside the root.
        Missing directories are fine (a restore may create them).

        Raises:
            RepairStepError: a directory on the way is a symlink or not a directory.
        """
        dirs = sorted({d for p in paths for d in ancestors(p, roots)})
        if not dirs:
            return
        # One lstat each through the agent (a symlink is listed as one, never followed), not a find
        # process in the VM: 0.15 s of every file step under TCG.
        try:
            entries = self.ctx.agent.manifest(dirs, recursive=False).entries
        except TransportError as exc:
            raise self.fail(f"cannot check the directories above {', '.join(paths)}: {exc.message}") from exc
        for entry in sorted(entries, key=lambda e: e.path):
            if entry.type != "dir":
                kind = FIND_KINDS.get(entry.type, entry.type)
                raise self.fail(f"refusing to act below {entry.path}: it is not a plain directory ({kind})")

    def quarantine(self, path: str, quarantine_dir: str) -> str:
        """Move ``path`` (a file or symlink, not followed) to ``<quarantine_dir>/<stamp>/<path>``.

        The move keeps the file for the operator; on the target, the fix package removes it (the diff
        of the watched paths shows it gone).

        Raises:
            RepairStepError: the move failed.
        """
        dest = posixpath.join(quarantine_dir, self.ctx.stamp, path.lstrip("/"))
        # The agent creates the destination's parents (mode 0700) without following symlinks, and
        # refuses to overwrite: the stamp makes every attempt's quarantine its own.
        try:
            self.ctx.agent.move_file(path, dest)
        except TransportError as exc:
            raise self.fail(f"cannot quarantine {path}: {exc.message}") from exc
        self.note(f"quarantined {path} -> {dest}")
        return dest


def combined_output(result: CommandResult) -> str:
    """stdout then stderr, capped and control-character-safe."""
    text = result.stdout_text
    if text and result.stderr and not text.endswith("\n"):
        text += "\n"
    return cap_text(text + result.stderr_text, MAX_LOGGED_OUTPUT)
