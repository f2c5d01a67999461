"""A fake systemctl for the crash harness: a small model of some units whose state is a JSON file in a
scratch directory, behind a transport that answers every ``systemctl`` command with it, so the killed
apply and the recovery after it (two processes) see one and the same systemd. Modelled on
:mod:`.disk_dpkg`.

systemctl never runs on this host. The model answers exactly the argvs of :mod:`orchestrator.systemd.argv`
that apply and recovery send: ``is-enabled``, ``enable``, ``disable``, ``mask``, ``unmask``, ``is-active``,
``reset-failed``, ``restart``, ``stop`` (of a known unit), ``show`` of the properties a restart reads
back (:mod:`orchestrator.systemd.counter`; the model has no automatic restarts: ``NRestarts=0``),
``daemon-reload`` and ``is-system-running`` (recovery's verification, answered ``running``). Any other
systemctl command, an unknown unit, or a command of a package manager or a shell is refused: written
to ``refused.log`` beside the JSON file (the apply would turn the exception into a rollback, so the
test reads the log) and raised.

A unit is its ``[Install]`` links (``enabled``), its mask link (``masked``) and its active state; a
started unit runs the content of its config file as it was at the (re)start (``running``: its sha256),
so a test can see whether the unit runs the config on disk.

Crash points (mode ``systemctl``): before each systemctl command, and after each one that changed the
model (durable, but the caller has not seen the answer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.systemd.argv import SYSTEMCTL
from orchestrator.systemd.counter import PROPERTIES as COUNTER_PROPERTIES
from orchestrator.transport.base import CommandResult
from tests.crash.disk_dpkg import REFUSED
from tests.crash.harness import CrashingLocal, crash_point

Answer = tuple[int, bytes, bytes]


@dataclass
class FakeUnit:
    """One unit: ``is-enabled`` prints ``masked`` over anything, else ``enabled``/``disabled``."""

    enabled: bool
    masked: bool
    active: str
    #: The file the unit reads when it starts, and the sha256 of what it read (None: not running).
    config: str
    running: str | None = None

    @property
    def file_state(self) -> str:
        return "masked" if self.masked else "enabled" if self.enabled else "disabled"


class RefusedCommandError(AssertionError):
    """A command the crash harness must never run on this host."""


class DiskSystemctl:
    """The model in ``state`` (JSON). ``refused`` lists the commands it refused, one per line."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.refused = state.with_name("refused.log")
        self.load()

    @staticmethod
    def create(state: Path, units: Mapping[str, FakeUnit]) -> DiskSystemctl:
        """A fresh model in ``state`` (any earlier one and its refusals are gone)."""
        state.parent.mkdir(parents=True, exist_ok=True)
        state.with_name("refused.log").unlink(missing_ok=True)
        state.write_text(json.dumps({"units": {n: asdict(u) for n, u in units.items()}, "reloads": 0}))
        return DiskSystemctl(state)

    def load(self) -> None:
        document: dict[str, Any] = json.loads(self.state.read_text())
        self.units = {name: FakeUnit(**item) for name, item in document["units"].items()}
        self.reloads = int(document["reloads"])

    def save(self) -> None:
        temp = self.state.with_name(self.state.name + ".new")
        temp.write_text(json.dumps({"units": {n: asdict(u) for n, u in self.units.items()},
                                    "reloads": self.reloads}))
        temp.replace(self.state)

    def refuse(self, argv: tuple[str, ...]) -> RefusedCommandError:
        with self.refused.open("a") as handle:
            handle.write(json.dumps(list(argv)) + "\n")
        return RefusedCommandError(f"the crash harness never runs {list(argv)} on this host")

    def run(self, argv: tuple[str, ...]) -> tuple[Answer, bool]:
        """Answer one systemctl command against the model as the other process left it; also whether
        it changed the model.

        Raises:
            RefusedCommandError: not a command the model knows (also written to ``refused``).
        """
        self.load()
        before = json.dumps({n: asdict(u) for n, u in self.units.items()}), self.reloads
        answer = self._answer(argv)
        if answer is None:
            raise self.refuse(argv)
        changed = (json.dumps({n: asdict(u) for n, u in self.units.items()}), self.reloads) != before
        if changed:
            self.save()
        return answer, changed

    def _answer(self, argv: tuple[str, ...]) -> Answer | None:
        if argv == (SYSTEMCTL, "daemon-reload"):
            self.reloads += 1
            return 0, b"", b""
        if argv == (SYSTEMCTL, "is-system-running"):
            return 0, b"running\n", b""
        if argv[1:2] == ("show",) and len(argv) == 5 and argv[3] == "--" and argv[4] in self.units:
            return self._show(argv[2], self.units[argv[4]])
        if len(argv) != 4 or argv[2] != "--" or argv[3] not in self.units:
            return None
        verb, name = argv[1], argv[3]
        return self._query(verb, self.units[name]) or self._change(verb, name, self.units[name])

    @staticmethod
    def _query(verb: str, unit: FakeUnit) -> Answer | None:
        if verb == "is-enabled":
            return (0 if unit.file_state == "enabled" else 1), f"{unit.file_state}\n".encode(), b""
        if verb == "is-active":
            return (0 if unit.active == "active" else 3), f"{unit.active}\n".encode(), b""
        return None

    @staticmethod
    def _show(option: str, unit: FakeUnit) -> Answer | None:
        if option != f"--property={','.join(COUNTER_PROPERTIES)}":
            return None
        sub = "running" if unit.active == "active" else "failed" if unit.active == "failed" else "dead"
        return 0, f"ActiveState={unit.active}\nSubState={sub}\nNRestarts=0\n".encode(), b""

    def _change(self, verb: str, name: str, unit: FakeUnit) -> Answer | None:
        masked = f"Unit file /etc/systemd/system/{name} is masked.\n".encode()
        if verb in ("enable", "restart") and unit.masked:
            return 1, b"", masked
        if verb == "enable":
            unit.enabled = True
        elif verb == "disable":
            unit.enabled = False    # a mask stays: disable only removes the [Install] links
        elif verb in ("mask", "unmask"):
            unit.masked = verb == "mask"
        elif verb == "reset-failed":
            unit.active = "inactive" if unit.active == "failed" else unit.active
        elif verb == "restart":
            try:
                unit.running = hashlib.sha256(Path(unit.config).read_bytes()).hexdigest()
                unit.active = "active"
            except FileNotFoundError:
                unit.running, unit.active = None, "failed"
                return 1, b"", f"Job for {name} failed.\n".encode()
        elif verb == "stop":
            unit.active, unit.running = "inactive", None
        else:
            return None
        return 0, b"", b""


class FakeSystemctlLocal(CrashingLocal):
    """:class:`CrashingLocal` (the agent may die at its Nth call) whose systemctl commands go to a
    :class:`DiskSystemctl`; this process dies (SIGKILL) at the ``crash_at``-th systemctl crash point."""

    def __init__(self, state: Path, *, crash_at: int = 0, counter: str, agent_crash_at: int = 0,
                 agent_counter: str) -> None:
        super().__init__(agent_crash_at, agent_counter)
        self.systemctl = DiskSystemctl(state)
        self.systemctl_crash_at, self.systemctl_counter = crash_at, counter

    def point(self, what: str) -> None:
        crash_point(self.systemctl_counter, self.systemctl_crash_at, what)

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        args = tuple(argv)
        if args[0] == SYSTEMCTL:
            self.point(f"before {' '.join(args)}")
            answer, changed = self.systemctl.run(args)
            if changed:
                self.point(f"after {' '.join(args)}")
            return CommandResult(args, *answer)
        if args[0] in REFUSED:
            raise self.systemctl.refuse(args)
        return super().run(argv, **kwargs)
