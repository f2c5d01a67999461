"""What the crash tests and their child processes share.

A test (the parent) saves a fix package, starts a child (``python -m tests.crash.<child> SPEC_JSON``)
that applies it, or recovers, and dies where the spec says; then runs recovery to the end in its own
process, as at the next start, and checks the target.

The spec every child reads: ``action`` ("apply", the default, or "recover"), ``mode`` and ``crash_at``
(where to die: ``journal-before`` / ``journal-after`` the Nth journal step, ``agent`` the Nth
crash-relevant system call inside the agent, or a mode of the child's own), ``counter`` (the crash
points are counted in this file and its ``.agent`` / ``.dpkg`` / ... siblings, so a parent can tell
how far a run got), ``state_db``, ``agent_dir``; to apply also ``backup_dir``, ``package_dir``,
``validates`` (false: the fix fails its validation and is rolled back; default true) and
``validated_sha256`` (optional); to recover ``config``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.apply import ApplyResult, apply_package
from orchestrator.apply.backup import Backup, load_backup
from orchestrator.apply.journal import Journal
from orchestrator.apply.recovery import RecoveryReport, recover_on_start
from orchestrator.config.settings import load_settings
from orchestrator.fixpkg import FixPackage
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state import open_state
from orchestrator.state.transactions import FINAL, TransactionStore, TxnRecord
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.local import LocalTransport
from orchestrator.transport.stream import CommandStream

REPO = Path(__file__).resolve().parents[2]
UID, GID = os.getuid(), os.getgid()
WRAPPER = Path(__file__).with_name("agent_wrapper.py")

Spec = dict[str, Any]


# -- both sides -----------------------------------------------------------------------------------


def count(counter: str) -> int:
    """Add one crash point to ``counter``; return how many there have been."""
    with Path(counter).open("a+b") as handle:
        handle.write(b".")
        handle.flush()
        return handle.tell()


def crash_point(counter: str, crash_at: int, what: str) -> None:
    """One crash point of a fake (dpkg, systemctl): counted in ``counter``, described on a line of
    ``counter.log`` (so a test can pick a point by what happens there); die at the ``crash_at``-th."""
    with Path(counter + ".log").open("a") as log:
        log.write(what + "\n")
    if count(counter) == crash_at:
        die()


def die() -> None:
    """SIGKILL ourselves: no finally block, no atexit, no flush, as in a power cut of this process."""
    os.kill(os.getpid(), signal.SIGKILL)


def recover_with(config: Path, agent_dir: str, connect: Callable[[], Transport]) -> RecoveryReport:
    """Recovery as at the next start, with the state store and audit log that ``config`` names."""
    app = App(load_settings({"VMREPAIR_CONFIG": str(config)}))
    try:
        return recover_on_start(app, connect=lambda target: connect(),
                                agent_for=lambda t: RemoteAgent(t, remote_dir=agent_dir, python="python3"))
    finally:
        app.close()


# -- the child side -------------------------------------------------------------------------------


class CrashingLocal(LocalTransport):
    """Runs the agent under agent_wrapper.py so it can die mid-replace."""

    def __init__(self, crash_at: int, counter: str) -> None:
        super().__init__()
        self.crash_at, self.counter = crash_at, counter

    def _wrapped(self, argv: Sequence[str]) -> list[str]:
        argv = list(argv)
        if argv[:3] == ["python3", "-I", "-B"]:
            argv = [sys.executable, "-B", str(WRAPPER), argv[3], str(self.crash_at), self.counter, *argv[4:]]
        return argv

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        return super().run(self._wrapped(argv), **kwargs)

    def open_stream(self, argv: Sequence[str]) -> CommandStream:
        # The agent runs as one --serve process per client: it must die at its Nth call too.
        return super().open_stream(self._wrapped(argv))


def install_journal_crash(mode: str, crash_at: int, counter: str) -> None:
    """Die just before (``journal-before``) or just after (``journal-after``) the ``crash_at``-th
    journal step is committed."""
    real = TransactionStore.step

    def step(self: TransactionStore, *args: Any, **kwargs: Any) -> None:
        point = count(counter)
        if point == crash_at and mode == "journal-before":
            die()
        real(self, *args, **kwargs)
        if point == crash_at and mode == "journal-after":
            die()

    TransactionStore.step = step  # type: ignore[method-assign]


def apply_from_spec(spec: Spec, transport: Transport) -> ApplyResult:
    """Apply the spec's package as the pipeline does (a transaction, its plan, the journal); print the
    result as JSON."""
    agent = RemoteAgent(transport, remote_dir=spec["agent_dir"], python="python3")
    package = FixPackage.load(Path(spec["package_dir"]))
    store = TransactionStore(open_state(Path(spec["state_db"])))
    txn = store.create(package_id=package.id, package_dir=spec["package_dir"], target="local",
                       component="app", backup_dir=spec["backup_dir"], ops_total=len(package.operations))
    record_plan(store, txn.id, VerifyPlan(()))   # as the pipeline does, before the first change
    validates = bool(spec.get("validates", True))
    result = apply_package(package, agent, transport, backup_dir=Path(spec["backup_dir"]),
                           journal=Journal(store, txn, package.operations), validate=lambda: validates,
                           validated_sha256=spec.get("validated_sha256"))
    print(json.dumps(result.as_dict()))
    return result


@dataclass(frozen=True)
class CrashPoint:
    """Where a child dies: the ``at``-th crash point of ``mode``, counted in ``counter`` (and siblings)."""

    mode: str
    at: int
    counter: str

    def at_in(self, mode: str) -> int:
        """``at`` when the child dies in ``mode``, else 0 (count, never die)."""
        return self.at if self.mode == mode else 0


def child_main(argv: Sequence[str], transport_for: Callable[[Spec, CrashPoint], Transport]) -> int:
    """A child's whole run: read the spec, arm the journal crash, build the transport, apply or recover.
    Exit 0 when the apply ended ``applied`` or the recovery ran, 1 when the apply ended otherwise."""
    spec: Spec = json.loads(argv[1])
    crash = CrashPoint(spec["mode"], int(spec["crash_at"]), spec["counter"])
    if crash.mode.startswith("journal"):
        install_journal_crash(crash.mode, crash.at, crash.counter)
    transport = transport_for(spec, crash)
    if spec.get("action", "apply") == "recover":
        report = recover_with(Path(spec["config"]), spec["agent_dir"], lambda: transport)
        print(json.dumps(report.as_dict()))
        return 0
    return 0 if apply_from_spec(spec, transport).status == "applied" else 1


# -- the parent side ------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def apply_spec(package: FixPackage, work: Path, mode: str, crash_at: int, **extra: Any) -> Spec:
    """The spec of one apply of ``package`` with everything under ``work`` (saved there first)."""
    package.save(work / "pkg")
    return {"state_db": str(work / "state.db"), "backup_dir": str(work / "backup"),
            "package_dir": str(work / "pkg"), "agent_dir": str(work / "agent"), "mode": mode,
            "crash_at": crash_at, "counter": str(work / "counter"), **extra}


def recover_spec(work: Path, mode: str, crash_at: int, **extra: Any) -> Spec:
    """The spec of one recovery of ``work``'s transaction, its crash points counted in
    ``work/recovery-counter`` (and siblings)."""
    return {"action": "recover", "config": str(write_config(work, work)), "state_db": str(work / "state.db"),
            "agent_dir": str(work / "agent"), "mode": mode, "crash_at": crash_at,
            "counter": str(work / "recovery-counter"), **extra}


def point_where(log: Path, pattern: str, occurrence: int = 1) -> int:
    """The number of the ``occurrence``-th crash point whose description (a line of a fake's counter
    log, see :func:`crash_point`) matches ``pattern``."""
    matches = [n for n, what in enumerate(log.read_text().splitlines(), 1) if re.search(pattern, what)]
    assert len(matches) >= occurrence, f"no crash point {pattern!r} (#{occurrence}) in {log}"
    return matches[occurrence - 1]


def run_child(module: str, spec: Spec) -> int:
    """Run ``python -m tests.crash.<module> SPEC``; its exit status (-9 or 137: killed)."""
    proc = subprocess.run([sys.executable, "-m", f"tests.crash.{module}", json.dumps(spec)], cwd=REPO,
                          capture_output=True, timeout=120, check=False)
    return proc.returncode


def assert_killed(code: int, label: str) -> None:
    assert code in (-9, 137), f"{label}: the child was not killed (exit {code})"


def write_config(work: Path, state_dir: Path) -> Path:
    """A config whose state store is in ``state_dir`` and whose audit log too stays in ``work``."""
    config = work / "config.yaml"
    config.write_text(f"state_dir: {state_dir}\naudit: {{path: {work / 'audit.jsonl'}}}\n")
    return config


def recover(work: Path, connect: Callable[[], Transport], *, state_dir: Path | None = None) -> list[str]:
    """Recovery to the end in this process; its errors."""
    config = write_config(work, work if state_dir is None else state_dir)
    return recover_with(config, str(work / "agent"), connect).errors


def is_final(work: Path) -> bool:
    """Whether ``work``'s one transaction is final already (a killed recovery may have got that far)."""
    return all(txn.state in FINAL for txn in TransactionStore(open_state(work / "state.db")).find())


def recovered_transaction(work: Path, label: str, *, is_audited: bool = True) -> tuple[TransactionStore,
                                                                                     TxnRecord]:
    """The one transaction of ``work``'s store, final, and audited when recovery touched it.

    ``is_audited`` false: the caller knows no recovery ran to its audit entry."""
    store = TransactionStore(open_state(work / "state.db"))     # parses and passes quick_check
    (txn,) = store.find()
    assert txn.state in FINAL, f"{label}: transaction left {txn.state}"
    recovered = txn.state != "committed" or any(s["step"].startswith("recover") for s in store.steps(txn.id))
    if recovered and is_audited:
        assert "journal_recovery" in (work / "audit.jsonl").read_text(), f"{label}: recovery not audited"
    return store, txn


def checked_backup(work: Path) -> Backup | None:
    """The backup, if the apply got that far: every blob matches its recorded hash."""
    return load_backup(work / "backup") if (work / "backup" / "backup.json").exists() else None


def regular_file(path: str) -> tuple[bytes, int, int, int] | None:
    """Content, mode, uid and gid of the regular file at ``path``; None when it is absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
    return Path(path).read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def own_file(path: str) -> tuple[bytes, int] | None:
    """Content and mode of the regular file at ``path``, which must still be ours; None: absent."""
    found = regular_file(path)
    if found is None:
        return None
    assert found[2:] == (UID, GID), f"{path} changed owner"
    return found[:2]


def points_of(counter: Path, mode: str, suffixes: dict[str, str]) -> int:
    """How many crash points of ``mode`` a run counted (``suffixes``: mode -> its counter's suffix)."""
    return Path(str(counter) + suffixes.get(mode, "")).stat().st_size


def kill_at_every_point(
    base: Path, name: str, points: int, kill: Callable[[Path, int], int], check: Callable[[Path, str], str]
) -> dict[str, int]:
    """For crash points 1 to ``points``: ``kill(work, crash_at)`` (a fresh target, then a child that must
    be killed) and ``check(work, label)`` (recovery to the end and the checks; the ending), each run in
    ``base/<name>-<crash_at>``. Returns how many runs ended in each state."""
    endings: dict[str, int] = {}
    for crash_at in range(1, points + 1):
        work, label = base / f"{name.replace(' ', '-')}-{crash_at}", f"{name} #{crash_at}"
        assert_killed(kill(work, crash_at), label)
        ending = check(work, label)
        endings[ending] = endings.get(ending, 0) + 1
    return endings


#: A mode's counter beside ``counter`` (the journal's is ``counter`` itself).
CHILD_SUFFIXES = {"agent": ".agent", "dpkg": ".dpkg", "systemctl": ".systemctl"}


def double_crash(
    tmp_path: Path, name: str, first: tuple[str, str, int], second: str, *,
    apply: Callable[[Path, str, int], int], recover: Callable[[Path, str, int], int],
    reset: Callable[[], None], check: Callable[[Path, str, bool], str],
) -> dict[str, int]:
    """A crash during recovery: kill ``apply(work, mode, crash_at)`` at ``first`` (its mode, the pattern
    of a crash point's description and which match, see :func:`point_where`), then the
    ``recover(work, mode, crash_at)`` after it at each of its crash points of mode ``second``; then
    ``check(work, label, is_audited)`` (recovery to the end and the checks). Returns the endings."""
    first_mode, pattern, occurrence = first
    counting = tmp_path / "count"
    reset()
    apply(counting, first_mode, 0)
    first_at = point_where(Path(f"{counting}/counter{CHILD_SUFFIXES[first_mode]}.log"), pattern, occurrence)

    def kill_apply(work: Path) -> None:
        reset()
        assert_killed(apply(work, first_mode, first_at), f"{name}: first kill")

    recovery = tmp_path / "count-recovery"
    kill_apply(recovery)
    assert recover(recovery, second, 0) == 0, f"{name}: the uninterrupted recovery failed"
    check(recovery, f"{name} uninterrupted recovery", True)
    points = points_of(recovery / "recovery-counter", second, CHILD_SUFFIXES)
    assert points >= 1, f"{name}: no {second} crash point in the recovery"

    def kill(work: Path, crash_at: int) -> int:
        kill_apply(work)
        return recover(work, second, crash_at)

    def check_audited(work: Path, label: str) -> str:
        # Killed between a transaction's last journal step and its audit entry, the recovery left a
        # recovery end without ``recovery_audited``: the next start audits it late, so every ending
        # is audited.
        return check(work, label, True)

    return kill_at_every_point(tmp_path, name, points, kill, check_audited)


class ScenarioModule(Protocol):
    """What :mod:`tests.crash.pkg_scenario` and :mod:`tests.crash.unit_scenario` both offer."""

    def apply_in_child(self, scenario: Any, work: Path, state: Path, mode: str, crash_at: int) -> int: ...

    def recover_in_child(self, work: Path, state: Path, mode: str, crash_at: int) -> int: ...

    def check_after_recovery(self, scenario: Any, work: Path, state: Path, label: str, *,
                             is_audited: bool = True) -> str: ...


def double_crash_of(module: ScenarioModule, scenario: Any, state: Path, tmp_path: Path, *,
                    first: tuple[str, str, int], second: str) -> dict[str, int]:
    """:func:`double_crash` of one scenario of ``module`` (its fake's state file ``state``)."""
    return double_crash(
        tmp_path, f"{scenario.kind} then recovery {second}", first, second,
        apply=lambda work, mode, at: module.apply_in_child(scenario, work, state, mode, at),
        recover=lambda work, mode, at: module.recover_in_child(work, state, mode, at),
        reset=lambda: scenario.reset(state),
        check=lambda work, label, audited: module.check_after_recovery(scenario, work, state, label,
                                                                        is_audited=audited))
