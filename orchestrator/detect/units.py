"""``unit:<unit>`` probes: the systemd state of a component's units, read with ``systemctl show``.

Decisions (``LoadState``/``ActiveState``/``UnitFileState`` as systemd reports them):

- ``LoadState=not-found``: the unit file of a watched unit is gone → UNIT_INACTIVE, critical.
- ``ActiveState=failed`` → UNIT_FAILED, critical.
- ``SubState=auto-restart``: the main process died and systemd is waiting to start it again. The
  unit is not running at this moment, whatever ActiveState says (``activating``) → UNIT_FAILED,
  critical. Counting it as running made a restart loop right after a failed start look healthy.
- ``ActiveState=activating`` with ``NRestarts`` > 0: the start under way is systemd's automatic
  restart after the unit exited; it is not up, whatever the start ends in → UNIT_FAILED, critical.
  systemd resets ``Result`` and ``ExecMainStatus`` when a start begins, so only the count tells this
  start from a deliberate one (vmrepair's own starts count from 0: :mod:`orchestrator.systemd.counter`).
  A unit whose start fails at once (a ``WorkingDirectory=`` it cannot enter) spends most of its loop in
  ``auto-restart`` and a moment in ``activating``: a probe at that moment passed it, and the run went on
  with the HTTP probe's issue instead (seen in a fresh-clone ``make test``).
- ``LoadState=bad-setting|error``: systemd cannot load the unit file, the next start fails
  → UNIT_FAILED, critical.
- running (active, reloading, activating) after a restart loop: ``restart_loop_failures`` failures (or
  automatic restarts) within the last ``restart_loop_minutes``, counted in the journal
  (:mod:`orchestrator.detect.unit_loops`), and ``NRestarts`` > 0 → UNIT_FAILED, warning (flapping).
  ``NRestarts`` counts automatic restarts since the unit was last started on purpose: at 0 the loop,
  whatever the window holds, ended with a deliberate start (a repair, an in-place restart) and the
  unit has not failed since, so it passes; otherwise a restart that fixed the unit would still fail
  its own recheck for ten minutes. vmrepair's own starts make sure the count starts at them, even
  when systemd merged one into its own automatic restart (:mod:`orchestrator.systemd.counter`).
- running with ``NRestarts`` >= ``unit_restarts_warning`` → UNIT_FAILED, warning: flapping since the
  last deliberate start, however long ago (also the rule when the journal cannot be read).
- failed or in ``auto-restart`` (below) after such a loop: still critical; the summary names the loop.
- inactive but enabled (or masked) → UNIT_INACTIVE, critical for vital components, warning otherwise.
- inactive and not enabled: the operator turned it off; passes, unless the last baseline had it
  enabled and running (disabled or stopped since the known-good state) → UNIT_INACTIVE.
- running, enabled in the baseline and no longer enabled → UNIT_INACTIVE, warning: it runs now and
  will not start at the next boot.
- inactive because its start conditions were not met (``ConditionResult=no``: systemd-pstore without
  a pstore, fsck-root on a read-write root), or a ``Type=oneshot`` unit that ran and succeeded
  (``Result=success``): that is how such a unit looks when all is well; passes.
- no systemd (PID 1 is something else), no ``systemctl``, or an answer without ``LoadState``:
  unavailable, neither pass nor fail. A journal that cannot be read (no ``journalctl``, no permission)
  only leaves the loop evidence out (``loop_journal``): never unavailable, never critical by itself.

Every result carries the window's count as ``loop_*`` evidence (turns, window, the last failure
times). Why the loop lives in this probe rather than a ``restarts:<unit>`` of its own: it is the same
fault of the same unit (one issue, one fingerprint), and it re-runs in the troubleshooting VM under the
same name. There "reproduced" means the unit fails or loops *in the VM*, in the VM's own journal: a
fresh VM has none of the target's history, so a failed unit reproduces through its failed state, and a
flapping one only when it loops again after its start in the VM (a unit that crashes at start does; one
that crashed under the target's load an hour ago does not, and the run says "not reproduced" with the
target's loop evidence in its report).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from orchestrator import systemd
from orchestrator.batchscope import BatchStore
from orchestrator.components.config import Thresholds
from orchestrator.detect.common import ProbeId
from orchestrator.detect.shared import RunShared
from orchestrator.detect.unit_loops import UnitLoops, iso
from orchestrator.errors import VmRepairError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.systemd.counter import restart_count
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

PREFIX = "unit:"
PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts", "Result", "LoadState",
              "ExecMainStatus", "Type", "ConditionResult", "User", "Group")
SHOW_TIMEOUT_S = systemd.SHOW_TIMEOUT_S
#: Beyond the command's own timeout, how long a probe waits for a fetch under way.
_WAIT_GRACE_S = 5.0
_ENABLED = frozenset({"enabled", "enabled-runtime"})
_RUNNING = frozenset({"active", "reloading", "activating"})
_STOPPED = frozenset({"inactive", "deactivating"})
_UNLOADABLE = frozenset({"bad-setting", "error"})


def probe_name(unit: str) -> str:
    return f"{PREFIX}{unit}"


@dataclass(frozen=True)
class UnitShow:
    """What ``systemctl show`` said about one unit: its properties, or why it could not be asked."""

    properties: dict[str, str] = field(default_factory=dict)
    unavailable_reason: str | None = None


def show_unit(transport: Transport, unit: str) -> UnitShow:
    """Ask systemd about ``unit`` (:data:`PROPERTIES`).

    Raises:
        TransportError: the target cannot be reached (a missing systemctl or systemd is not an error).
    """
    answer = systemd.show(transport, [unit], PROPERTIES, timeout=SHOW_TIMEOUT_S)
    if answer.unavailable_reason is not None:
        return UnitShow(unavailable_reason=answer.unavailable_reason)
    props = answer.units[0].properties if answer.units else {}
    if "LoadState" not in props:
        return UnitShow(unavailable_reason="systemctl show answered without a LoadState")
    return UnitShow(props)


@dataclass
class _Shown:
    """One batch's answers, and the units a fetch still under way will answer."""

    answers: dict[str, UnitShow] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()
    done: threading.Event = field(default_factory=threading.Event)


class ShowBatch:
    """``systemctl show`` of many units in one call, answered to each unit probe of one run.

    A run with thirty unit probes otherwise starts thirty ``systemctl`` processes (about 80 ms each
    under TCG, FIELD_NOTES). :meth:`prefetch` asks before the probes start; :meth:`prefetch_soon` asks
    while they run, and a probe of a unit it will answer waits for that answer (a round's probes no
    longer all wait for the one ``systemctl show``: 0.5 to 1.2 s under TCG, while the probes that need
    no unit, dpkg and the config tests first, could already run). A unit the batch did not answer is
    asked on its own, as without a batch.
    """

    def __init__(self) -> None:
        #: One store per batch of probes (:meth:`scope`): batches run at once keep their own answers.
        self._answers: BatchStore[_Shown] = BatchStore(_Shown)

    def scope(self) -> AbstractContextManager[object]:
        """Answers prefetched inside this block serve only the probes run inside it."""
        return self._answers.scope()

    def prefetch(self, transport: Transport, units: Sequence[str]) -> None:
        """Raises: TransportError: the target cannot be reached."""
        shown = self._answers.current()
        shown.answers, shown.pending = _ask(transport, units), frozenset()

    def prefetch_soon(self, transport: Transport, units: Sequence[str]) -> threading.Thread | None:
        """Ask in a thread of its own (started here; join it when the batch's probes are done; None: no
        unit to ask about, no thread). A failed fetch only means that each probe asks for itself."""
        shown = self._answers.current()
        shown.answers, shown.pending = {}, frozenset(units)
        if not units:
            return None
        shown.done.clear()

        def fetch() -> None:
            try:
                shown.answers = _ask(transport, units)
            except VmRepairError as exc:
                log.debug("batched systemctl show failed, probing one by one: %s", exc.message)
            finally:
                shown.done.set()

        thread = threading.Thread(target=fetch, name="units-show", daemon=True)
        thread.start()
        return thread

    def take(self, unit: str) -> UnitShow | None:
        shown = self._answers.current()
        # Bounded: the fetch's own command is (SHOW_TIMEOUT_S); past that the probe asks for itself.
        if unit in shown.pending and not shown.done.wait(SHOW_TIMEOUT_S + _WAIT_GRACE_S):
            return None
        return shown.answers.get(unit)

    def discard(self) -> None:
        self._answers.current().answers = {}


def _ask(transport: Transport, units: Sequence[str]) -> dict[str, UnitShow]:
    """Raises: TransportError: the target cannot be reached."""
    answers: dict[str, UnitShow] = {}
    # Even one unit is asked here rather than by its probe (the same single call): the writable
    # probes of its component read the unit's current User=/Group= from this answer.
    if not units:
        return answers
    answer = systemd.show(transport, list(units), ("Id", *PROPERTIES), timeout=SHOW_TIMEOUT_S)
    if answer.unavailable_reason is not None or len(answer.units) != len(units):
        return answers   # each probe asks again (and reports a reason itself); blocks match by position
    # By position: Id is the unit's primary name, which differs from an alias asked for.
    for unit, info in zip(units, answer.units, strict=False):
        props = {k: v for k, v in info.properties.items() if k != "Id"}
        if "LoadState" in props:
            answers[unit] = UnitShow(props)
    return answers


def evaluate(  # noqa: PLR0911, PLR0912 - one return per rule of the module docstring
    component: Component, unit: str, show: UnitShow, thresholds: Thresholds,
    baseline: tuple[str, str] | None = None, *, loops: UnitLoops | None = None,
) -> ProbeResult:
    """Turn one ``systemctl show`` answer, and the window's journal entries of the unit, into a result
    (rules in the module docstring)."""
    pid = ProbeId(probe_name(unit), component.name, IssueKind.UNIT_FAILED, unit)
    if show.unavailable_reason is not None:
        return pid.unavailable(show.unavailable_reason)
    props = show.properties
    evidence = {**props, **(loops.evidence(unit) if loops is not None else {})}
    loop = _loop(unit, loops, thresholds)
    load, active = props.get("LoadState", ""), props.get("ActiveState", "")
    file_state = props.get("UnitFileState", "")
    inactive = IssueKind.UNIT_INACTIVE
    if load == "not-found":
        return pid.failed(Severity.CRITICAL, f"{unit}: unit file is gone (LoadState=not-found)",
                          evidence, kind=inactive)
    if active == "failed":
        return pid.failed(Severity.CRITICAL, f"{unit} failed (Result={props.get('Result', '?')}, "
                          f"ExecMainStatus={props.get('ExecMainStatus', '?')}){loop}", evidence)
    if load in _UNLOADABLE:
        return pid.failed(Severity.CRITICAL,
                          f"{unit}: systemd cannot load the unit file (LoadState={load})", evidence)
    if props.get("SubState") == "auto-restart":
        return pid.failed(Severity.CRITICAL,
                          f"{unit} is in a restart loop: its process exited and systemd is waiting to "
                          f"restart it (Result={props.get('Result', '?')}, "
                          f"ExecMainStatus={props.get('ExecMainStatus', '?')}, "
                          f"NRestarts={props.get('NRestarts', '?')}){loop}", evidence)
    if active == "activating" and restart_count(props) > 0:
        # The start reset ExecMainStatus: how the last run ended is only in the journal.
        last = evidence.get("loop_last_exit")
        how = f" ({last})" if last else ""
        return pid.failed(Severity.CRITICAL,
                          f"{unit} is not up: systemd is starting it again after it exited{how} "
                          f"(automatic restart {restart_count(props)}, {props.get('SubState', '?')}){loop}",
                          evidence)
    was_enabled = baseline is not None and baseline[1] in _ENABLED
    if baseline is not None:
        evidence["baseline"] = f"{baseline[0]}, {baseline[1]}"
    if active in _RUNNING:
        count = restart_count(props)
        if loop and count > 0:
            return pid.failed(Severity.WARNING, f"{unit} is flapping: {active} now{loop} "
                              f"(NRestarts={count} since its last deliberate start)", evidence)
        if loop:
            evidence["loop_ended"] = "by a deliberate start: no automatic restart since (NRestarts=0)"
        if count >= thresholds.unit_restarts_warning:
            return pid.failed(Severity.WARNING, f"{unit} is flapping: {count} failures in a window "
                              f"(NRestarts since its last deliberate start, now {active})", evidence)
        if was_enabled and file_state not in _ENABLED and file_state != "static":
            return pid.failed(Severity.WARNING, f"{unit} is {active} but {file_state or 'not enabled'} "
                              "since the baseline: it will not start at the next boot", evidence,
                              kind=IssueKind.UNIT_INACTIVE)
        return pid.passed(f"{unit} is {active}", evidence)
    stopped = Severity.CRITICAL if component.vital else Severity.WARNING
    if active in _STOPPED:
        if "masked" in (load, file_state):
            return pid.failed(stopped, f"{unit} is masked and {active}", evidence, kind=inactive)
        # Before the condition rule: systemd keeps ConditionResult=no on a unit stopped by hand (seen
        # after `systemctl disable --now`), so a unit the baseline ran and enabled that is now disabled
        # and stopped must not pass as "conditions not met".
        if was_enabled and baseline is not None and baseline[0] in _RUNNING and file_state not in _ENABLED:
            return pid.failed(stopped, f"{unit} is {file_state or 'not enabled'} and {active}; the baseline "
                              f"had it {baseline[1]} and {baseline[0]}", evidence, kind=inactive)
        if props.get("ConditionResult") == "no":
            return pid.passed(f"{unit} is {active}: its start conditions are not met", evidence)
        if props.get("Type") == "oneshot" and props.get("Result") == "success":
            return pid.passed(f"{unit} ran and exited successfully (oneshot)", evidence)
        if file_state in _ENABLED:
            return pid.failed(stopped, f"{unit} is {file_state} but {active}", evidence, kind=inactive)
        return pid.passed(f"{unit} is {active} and {file_state or 'not enabled'}", evidence)
    return pid.unavailable(f"unexpected ActiveState {active!r}", evidence)


def _loop(unit: str, loops: UnitLoops | None, thresholds: Thresholds) -> str:
    """`` after N failures in the last M min (last at T)`` when the window holds a loop, else ``""``."""
    if loops is None or loops.unavailable_reason is not None:
        return ""
    rec = loops.record(unit)
    if rec.turns < thresholds.restart_loop_failures:
        return ""
    last = f", last at {iso(rec.failures[0])}" if rec.failures else ""
    gave_up = "; systemd gave up (start-limit-hit)" if rec.has_given_up else ""
    return f" after {rec.turns} failures in the last {loops.window_minutes} min{last}{gave_up}"


def probe_unit(
    transport: Transport, component: Component, unit: str, thresholds: Thresholds, *,
    batch: ShowBatch | None = None, baseline: tuple[str, str] | None = None,
    loops: RunShared[UnitLoops] | None = None,
) -> ProbeResult:
    """``baseline``: the unit's (ActiveState, UnitFileState) in the target's last baseline; ``loops``:
    the round's journal answer (:func:`orchestrator.detect.unit_loops.shared_loops`).

    Raises:
        TransportError: the target cannot be reached.
    """
    show = (batch.take(unit) if batch is not None else None) or show_unit(transport, unit)
    # Without systemd there is no journal of its units to read either.
    window = loops.get() if loops is not None and show.unavailable_reason is None else None
    return evaluate(component, unit, show, thresholds, baseline, loops=window)
