"""Boot diagnostics: is every watched component present and healthy, and what do its dependencies
score? With ``remediate``, a broken or missing VITAL component is repaired at once, in this order,
stopping at the first that makes its probes pass:

0. remove a stub left by an earlier run (the real unit may work by now);
1. reinstall its packages from the local apt cache (a ``.deb`` it lacks may come from the
   orchestrator's download cache of the host layers, at the installed version);
2. restore its config and unit files from the target's baseline;
3. install stub units (reduced mode: dependants run, the component does not), only for a component
   whose configuration declares one (``stub: true``); any other stays broken (degraded mode).

After each of 0-2 the component's units are restarted and its probes re-run until they pass or the
settle policy gives up. An OPTIONAL component (``vital: false``) is only reported: the host runs with
reduced features, and nothing is changed on its behalf. Every broken component found is audited as an
error and every remediation as a recovery.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator import systemd
from orchestrator.agent.api import AgentApi
from orchestrator.audit.sink import AuditSink, log_error, log_recovery
from orchestrator.boot.critical import boot_critical
from orchestrator.bootdiag import remediate as fix
from orchestrator.bootdiag.dependencies import dpkg_audit, score_component
from orchestrator.bootdiag.fetched import FetchedDebs
from orchestrator.bootdiag.presence import Presence, check_presence
from orchestrator.bootdiag.result import (
    NOT_WORKING,
    Action,
    ActionKind,
    ActionStatus,
    BootDiagnosis,
    ComponentDiagnosis,
    ComponentState,
)
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.model import Component, ProbeResult
from orchestrator.retry import service_settle_policy
from orchestrator.steps.context import BaselineReader
from orchestrator.transport.base import Transport


@dataclass(frozen=True)
class _Check:
    """One look at a component: presence, probes, stubs, and the state they add up to."""

    presence: Presence
    probes: tuple[ProbeResult, ...]
    stubs: tuple[str, ...]

    @property
    def state(self) -> ComponentState:
        if self.stubs:
            return ComponentState.REDUCED
        if self.presence.missing:
            return ComponentState.MISSING
        if any(not p.ok and not p.is_unavailable for p in self.probes):
            return ComponentState.BROKEN
        if self.presence.is_checked or any(p.ok for p in self.probes):
            return ComponentState.HEALTHY
        return ComponentState.UNKNOWN

    @property
    def problems(self) -> tuple[str, ...]:
        failing = [p.summary for p in self.probes if not p.ok and not p.is_unavailable]
        stubs = [f"a vmrepair stub stands in: {path}" for path in self.stubs]
        unknown = list(self.presence.unavailable) if self.state is ComponentState.UNKNOWN else []
        return (*stubs, *self.presence.missing, *failing, *unknown)


def diagnose_components(
    transport: Transport,
    agent: AgentApi,
    watch: WatchConfig,
    *,
    baseline: BaselineReader | None,
    audit: AuditSink,
    remediate: bool,
    sleep: Callable[[float], None] = time.sleep,
    fetched: FetchedDebs | None = None,
) -> BootDiagnosis:
    """Diagnose (and with ``remediate``, repair) every component of ``watch`` on the target; see the
    module docstring. ``baseline`` is the target's newest baseline (None: none recorded).

    Raises:
        TransportError: the target cannot be reached (a check that merely cannot run there is noted).
        AuditError: the audit trail cannot be written.
    """
    run = _Run(transport, agent, Detector(watch, transport, agent), baseline, audit, sleep, fetched)
    audit_output = dpkg_audit(transport) if any(c.packages for c in watch.components) else None
    results = []
    for component in watch.components:
        found = run.check(component)
        final = found
        actions: tuple[Action, ...] = ()
        if found.state in NOT_WORKING:
            log_error(audit, component.name,
                      f"{component.name} is {found.state} at boot: {'; '.join(found.problems)}",
                      vital=component.vital, state=str(found.state))
            if remediate and component.vital and _touches_boot(component):
                # fstab & co: a wrong guess shows only at the next boot, so these are never changed in
                # place; `vmrepair run` proves a fix across a reboot in a troubleshooting VM first.
                actions = (Action(ActionKind.RESTORE_BASELINE, ActionStatus.SKIPPED,
                                  "boot-critical: not changed in place; run `vmrepair run` to repair it "
                                  "in a troubleshooting VM"),)
            elif remediate and component.vital:
                final, actions = run.remediate(component, found)
        score = score_component(transport, component, audit_output=audit_output,
                                load_states=final.presence.load_states)
        results.append(ComponentDiagnosis(component.name, component.vital, found.state, final.state,
                                          final.problems, actions, score))
    return BootDiagnosis(tuple(results), remediate)


def _touches_boot(component: Component) -> bool:
    return any(boot_critical(p) for p in (*component.config_paths, *component.unit_paths))


@dataclass(frozen=True)
class _Run:
    transport: Transport
    agent: AgentApi
    detector: Detector
    baseline: BaselineReader | None
    audit: AuditSink
    sleep: Callable[[float], None]
    fetched: FetchedDebs | None = None

    def check(self, component: Component, *, settle: bool = False) -> _Check:
        probe = self.detector.run_components
        probes = service_settle_policy(sleep=self.sleep)(probe, [component.name]) if settle \
            else probe([component.name])
        stubs = tuple(path for path, _ in fix.find_stubs(self.agent, component))
        return _Check(check_presence(self.transport, component), tuple(probes), stubs)

    def remediate(self, component: Component, current: _Check) -> tuple[_Check, tuple[Action, ...]]:
        """Run the steps in order until one makes ``component`` healthy, else install stubs."""
        steps: list[Callable[[], Action | None]] = [
            lambda: fix.remove_stubs(self.transport, self.agent, component),
            lambda: fix.reinstall(self.transport, component, self.fetched),
            lambda: fix.restore_baseline(self.transport, self.agent, component, self.baseline),
        ]
        actions: list[Action] = []
        for step in steps:
            action = step()
            if action is None:
                continue
            if action.status is ActionStatus.DONE:
                current = self._restart_and_check(component)
                if current.state is ComponentState.HEALTHY:
                    action = dataclasses.replace(action, status=ActionStatus.FIXED)
            self._record(component, action)
            actions.append(action)
            if action.status is ActionStatus.FIXED:
                return current, tuple(actions)
        if not component.stub:
            skipped = Action(ActionKind.STUB_UNIT, ActionStatus.SKIPPED,
                             f"no stub declared for {component.name} (watch.components[].stub): it stays "
                             "down and the host degraded until it is repaired")
            self._record(component, skipped)
            return current, (*actions, skipped)
        stub = fix.install_stubs(self.transport, self.agent, component, current.presence.load_states)
        self._record(component, stub)
        return self.check(component), (*actions, stub)

    def _restart_and_check(self, component: Component) -> _Check:
        # A reinstall or restore can bring back a unit file: systemd must re-read them first.
        systemd.daemon_reload(self.transport)
        for unit in component.units:
            systemd.restart(self.transport, unit)
        return self.check(component, settle=True)

    def _record(self, component: Component, action: Action) -> None:
        log_recovery(self.audit, component.name, str(action.kind), status=str(action.status),
                     detail=action.detail, stage="boot-diagnostics",
                     reduced_mode=action.kind is ActionKind.STUB_UNIT)
