"""Triage: fix in place when a safe known action suffices, otherwise escalate to a troubleshooting VM.

Safe in place means: restarting a service whose only problem is that it is not running (or does not
answer), when nothing else about the component is broken. A restart cannot fix a config that does not
parse, a corrupt data file or a full disk, so those always escalate; so does anything still failing
after the retries. Nor can it fix what the service stands on: before a restart in place the
component's dependencies are scored (:func:`~orchestrator.bootdiag.dependencies.score_on_target`) and
a broken one (:func:`~orchestrator.bootdiag.verdict.judge`: its own package half-installed, ``pip
check`` failing, a Requires= unit failed or gone) escalates too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator import systemd
from orchestrator.bootdiag.dependencies import score_on_target
from orchestrator.bootdiag.result import DependencyScore
from orchestrator.bootdiag.verdict import judge
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import HealthSettings
from orchestrator.detect import sysdirs
from orchestrator.detect.common import HOST_COMPONENT
from orchestrator.errors import PipelineError
from orchestrator.model import REPORT_ONLY, Component, Issue, IssueKind, ProbeResult
from orchestrator.pipeline.context import RunContext
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.transport.base import Transport

#: Issues of the host rather than of one component.
DISK_KINDS = frozenset({IssueKind.DISK_FULL, IssueKind.INODES_FULL})
#: Host-wide state a troubleshooting VM cannot reproduce (it has its own kernel, memory and boot) and
#: no strategy repairs yet: reported with their evidence, never sent to a VM, and checked again once the
#: run's other repairs are done (a degraded system often is the failed unit another issue repaired).
REPORT_ONLY_KINDS = frozenset({IssueKind.MEMORY_PRESSURE, IssueKind.KERNEL_FAULT, IssueKind.SYSTEM_DEGRADED})
#: Issue kinds a restart may cure (a port no longer listened on is the same symptom as an endpoint
#: that does not answer).
RESTARTABLE = {IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.HTTP_DOWN, IssueKind.PORT_DOWN}
#: Primary-issue order within a component: the most fundamental cause first.
PRIORITY = [IssueKind.CONFIG_INVALID, IssueKind.LOG_CORRUPT, IssueKind.DISK_FULL, IssueKind.INODES_FULL,
            IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.HTTP_DOWN, IssueKind.PORT_DOWN]
RESTART_ATTEMPTS = 2


#: Scores a component's dependencies on the target (raises TransportError when it cannot be reached).
Score = Callable[[Transport, Component], DependencyScore]


@dataclass(frozen=True)
class TriageDecision:
    issue: Issue
    related: tuple[Issue, ...]
    in_place: bool
    reason: str
    #: The component's dependency score, when a restart in place was considered (None otherwise).
    dependencies: DependencyScore | None = None

    def as_dict(self) -> dict[str, object]:
        return {"issue": self.issue.as_dict(), "related": [i.id for i in self.related],
                "in_place": self.in_place, "reason": self.reason,
                **({} if self.dependencies is None else {"dependencies": self.dependencies.as_dict()})}


def is_system_path_issue(issue: Issue) -> bool:
    """The mode or owner of a watched system path (``sysdir:/tmp``, ``/etc``, ``/etc/shadow``,
    ``/etc/sudoers`` ...: a rule of :data:`~orchestrator.detect.sysdirs.RULES`), repaired through a VM
    like a component's.

    Directories and files alike: the capture takes the path's own entry (type, mode, owner and, for a
    file, the sha256 the agent computes on the target), never its content, and the VM gives its *own*
    node at that path the target's mode and owner (:func:`~orchestrator.sandbox.mirror.meta_nodes`).
    A mode is all such a repair changes, so the content of ``/etc/shadow`` (every password hash) never
    has to leave the target. ``/`` stays reported: a fix package cannot name it
    (:func:`~orchestrator.fixpkg.paths.normalise_path`). A missing path (PATH_MISSING) stays reported
    too: recreating ``/etc/shadow`` would need its content.
    """
    rule = sysdirs.RULES.get(issue.subject)
    return (issue.component == HOST_COMPONENT and issue.kind is IssueKind.PERMISSIONS
            and issue.probe == sysdirs.probe_name(issue.subject)
            and rule is not None and rule.path != "/")


def is_report_only(issue: Issue) -> bool:
    """Host-wide issues other than disk space and system paths (:data:`REPORT_ONLY_KINDS`, and the
    other host issues: a missing system file, the kernel, the boot ...)."""
    if issue.kind in REPORT_ONLY_KINDS or REPORT_ONLY in issue.evidence:
        return True
    return (issue.component == HOST_COMPONENT and issue.kind not in DISK_KINDS
            and not is_system_path_issue(issue))


def will_escalate(result: ProbeResult) -> bool:
    """Whether the issue this result makes goes to a troubleshooting VM whatever else a round finds:
    it failed, it is repaired (not only reported), and no restart can fix its kind (:func:`decide`
    escalates any group holding it). The run boots the VM on the first such result, while the rest of
    detection runs."""
    if result.ok or result.is_unavailable:
        return False
    issue = Issue.from_result(result)
    return not is_report_only(issue) and issue.kind not in RESTARTABLE


def group_issues(issues: list[Issue]) -> list[tuple[Issue, tuple[Issue, ...]]]:
    """One primary issue per component (the most fundamental kind), with the rest as related.

    A component's report-only issues form a group of their own: the host's memory pressure must
    neither become the primary of a repairable system-path issue (which would then never be
    repaired) nor hide as a related issue of one (it would vanish from the run's outcomes)."""
    by_component: dict[tuple[str, bool], list[Issue]] = {}
    for issue in issues:
        by_component.setdefault((issue.component, is_report_only(issue)), []).append(issue)
    groups = []
    for items in by_component.values():
        items.sort(key=lambda i: PRIORITY.index(i.kind) if i.kind in PRIORITY else len(PRIORITY))
        groups.append((items[0], tuple(items[1:])))
    # Disk space first: nothing else can be repaired reliably on a full disk.
    groups.sort(key=lambda g: 0 if g[0].kind in DISK_KINDS else 1)
    return groups


def decide(primary: Issue, related: tuple[Issue, ...], component: Component | None) -> TriageDecision:
    kinds = {primary.kind, *(i.kind for i in related)}
    if component is None or not component.units:
        return TriageDecision(primary, related, False, "no unit to restart for this issue; escalating")
    if not kinds <= RESTARTABLE:
        blocking = sorted(str(k) for k in kinds - RESTARTABLE)
        reason = f"a restart cannot fix {', '.join(blocking)}; escalating to a troubleshooting VM"
        return TriageDecision(primary, related, False, reason)
    return TriageDecision(primary, related, True,
                          f"only {', '.join(sorted(map(str, kinds)))}: restart in place with "
                          f"{RESTART_ATTEMPTS} attempts before escalating")


def restart_in_place(
    transport: Transport,
    component: Component,
    recheck: Callable[[], list[ProbeResult]],
    *,
    deadline_s: float = systemd.RESTART_DEADLINE_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, list[dict[str, object]]]:
    """reset-failed + restart each unit (bounded: :func:`~orchestrator.systemd.bounded_restart`), then
    re-run the component's probes; up to RESTART_ATTEMPTS.

    A restart that hangs (its unit killed at ``deadline_s``) ends the in-place repair at once, not
    fixed: a second try would hang as long again, and what makes a stop hang (a process stuck on a
    data directory it lost) is for the troubleshooting VM to find. A restart that merely failed is
    logged and the probes decide, as before.

    Raises:
        TransportError: the target cannot be reached.
    """
    log: list[dict[str, object]] = []
    for attempt in range(1, RESTART_ATTEMPTS + 1):
        for unit in component.units:
            outcome = systemd.bounded_restart(transport, unit, deadline_s=deadline_s, quick_timeout=30,
                                              sleep=sleep, clock=clock)
            log.append({"attempt": attempt, "unit": unit, "restart": str(outcome.end),
                        "state": f"{outcome.active_state}/{outcome.sub_state}",
                        **({} if outcome.succeeded else {"detail": outcome.describe()})})
            if outcome.hung:
                return False, log
        sleep(2.0 * attempt)
        results = recheck()
        failing = [r.probe for r in results if not r.ok and not r.is_unavailable]
        passing = [r.probe for r in results if r.ok and not r.is_unavailable]
        log.append({"attempt": attempt, "failing_after": failing, "passing_after": passing})
        # Fixed means: something was checked and passed, and nothing failed. Probes that could not
        # run prove nothing, so an all-unavailable recheck is not a repair.
        if passing and not failing:
            return True, log
    return False, log


def components_for(watch: WatchConfig, issue: Issue) -> list[Component]:
    """The components an issue's repair may capture and change; the issue's own first.

    Raises:
        PipelineError: the issue names a component the watch config does not know.
    """
    if issue.kind in DISK_KINDS:
        # A disk issue belongs to the host: every component with logs is in scope.
        return [c for c in watch.components if c.log_paths]
    if is_system_path_issue(issue):
        return [system_path_component(issue.subject)]
    try:
        return [watch.component(issue.component)]
    except KeyError as exc:
        raise PipelineError(f"issue {issue.id} names unknown component {issue.component!r}",
                            stage=Stage.TRIAGE) from exc


def system_path_component(path: str) -> Component:
    """The synthetic component a system path's repair works on: the path is its only writable path,
    so the capture takes its own entry and nothing else (:func:`~orchestrator.capture.snapshot.
    meta_paths`: never what is below a directory, never a file's content: writable paths are not
    among :attr:`Component.all_paths`, which is all the capture packs), and the sandbox gives the VM's
    own node the target's mode and owner. No units: nothing to restart, so triage escalates, the
    generators propose no restart, and core features has nothing to check beyond the probes."""
    return Component(HOST_COMPONENT, vital=True, writable_paths=(path,), origin="builtin")


def triage(ctx: RunContext, issue: Issue, related: tuple[Issue, ...],
           component: Component | None, *, score: Score = score_on_target) -> TriageDecision:
    """Stage triage: decide, and record the decision as evidence.

    A restart in place the issue kinds allow is refused when the component's dependencies are broken
    (``score`` runs only then: it costs a few commands on the target).

    Raises:
        TransportError: the target cannot be reached (while scoring the dependencies).
    """
    with ctx.session.stage(Stage.TRIAGE) as st:
        decision = decide(issue, related, component)
        if decision.in_place and component is not None:
            decision = judge_restart(decision, component, score(ctx.transport, component),
                                     ctx.app.settings.health)
        ctx.session.write_json(Evidence.TRIAGE.file(issue.component), decision.as_dict())
        st.detail = decision.reason
    return decision


def judge_restart(decision: TriageDecision, component: Component, score: DependencyScore,
                  settings: HealthSettings) -> TriageDecision:
    """``decision`` (a restart in place) with the dependency ``score``; escalating instead when the
    verdict refuses a blind restart."""
    verdict = judge(vital=component.vital, score=score, settings=settings)
    if verdict.may_restart:
        return dataclasses.replace(decision, dependencies=score)
    return TriageDecision(decision.issue, decision.related, False,
                          f"{verdict.reason}; escalating to a troubleshooting VM", score)


def in_place(
    ctx: RunContext, issue: Issue, component: Component, *,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Stage in-place: restart the component's units on the target; True when its probes then pass.

    False (the driver escalates to a troubleshooting VM) also when a restart hung and its unit was
    killed: that is a restart that did not help, never an error that ends the run.

    Raises:
        TransportError: the target cannot be reached.
    """
    with ctx.session.stage(Stage.IN_PLACE) as st:
        fixed, entries = restart_in_place(ctx.transport, component,
                                          lambda: ctx.probes.run_components([issue.component]),
                                          deadline_s=ctx.app.settings.health.restart_deadline_s,
                                          sleep=sleep, clock=clock)
        ctx.session.write_json(Evidence.IN_PLACE.file(issue.component), entries)
        hung = any(e.get("restart") == str(systemd.RestartEnd.HUNG) for e in entries)
        st.detail = ("resolved by restart" if fixed else
                     "restart hung (unit killed); escalating" if hung else "still failing; escalating")
    return fixed
