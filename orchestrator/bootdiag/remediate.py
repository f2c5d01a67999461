"""The remediations boot diagnostics may apply to a broken vital component, each a small function
returning an :class:`~orchestrator.bootdiag.result.Action` (never raising for a failed step: the
next one may still help).

- **reinstall**: ``apt-get install --reinstall --no-download`` of the packages whose ``.deb`` is in
  the local apt cache. No network at boot (and often none at all): a package that is not cached is
  skipped, never downloaded. Missing conffiles come back (``--force-confmiss``); edited ones are
  kept (``--force-confold``): the baseline step decides about those. apt runs as a transient unit of
  the target's systemd (:mod:`orchestrator.systemd.transient`): the daemon's own unit keeps ``/usr``
  read-only (``ProtectSystem=yes``), and this one command is what may write there.
- **restore_baseline**: the component's config and unit paths made to match the target's baseline,
  with the repair stage's ``restore_baseline`` step (files rewritten with their recorded mode and
  owner, symlinks and directories recreated; files the baseline lacks are left alone).
- **stub_unit**: a stand-in for each service unit, in ``/run/systemd/system`` so it is gone at the
  next boot: a drop-in that turns the unit into a oneshot ``RemainAfterExit`` ``/bin/true`` (or a whole
  unit when systemd has none), marked ``vmrepair stub`` in its Description. Units that Require it
  start again; the component itself does not run (reduced mode) until it is repaired and the stub
  removed (:func:`remove_stubs`, which every later remediation tries first).
"""

from __future__ import annotations

import re

from orchestrator import systemd
from orchestrator.agent.api import AgentApi
from orchestrator.bootdiag.fetched import FetchedDebs, stage_fetched
from orchestrator.bootdiag.presence import PACKAGE_RE
from orchestrator.bootdiag.result import Action, ActionKind, ActionStatus
from orchestrator.detect.common import command_output, run_command
from orchestrator.errors import CommandTimeoutError, RepairStepError, StepNotApplicableError
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.steps.context import BaselineReader, RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.kinds.restore_baseline import RestoreBaselineStep, run_restore_baseline
from orchestrator.steps.kinds.restore_conffile import APT_ARCHIVES
from orchestrator.systemd.transient import run_outside_sandbox
from orchestrator.transport.base import Transport

REINSTALL_TIMEOUT_S = 900.0
STUB_DIR = "/run/systemd/system"
#: Sorted after other drop-ins, so its empty assignments reset what they set.
STUB_DROPIN = "zz-vmrepair-stub.conf"
STUB_MARK = "vmrepair stub"
#: Unit names written into a unit file: no newline, no path, nothing systemd would read otherwise.
_SERVICE_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]{1,200}\.service$")
_STUB_NOTE = ("# Written by vmrepair boot diagnostics: {component} is broken, so this stand-in keeps the\n"
              "# units that need {unit} starting (reduced mode). It lives in /run: gone at the next boot.\n"
              "# Remove it and run `systemctl daemon-reload` once {component} is repaired.\n")
_STUB_DROPIN_BODY = ("[Unit]\nDescription=" + STUB_MARK + " for {unit} ({component} broken: reduced mode)\n"
                     "\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecCondition=\nExecStartPre=\n"
                     "ExecStart=\nExecStart=/bin/true\nExecStartPost=\nExecReload=\nExecStop=\n"
                     "ExecStopPost=\nEnvironmentFile=\nPIDFile=\nUser=\nGroup=\nRestart=no\n")
_STUB_UNIT_BODY = ("[Unit]\nDescription=" + STUB_MARK + " for {unit} ({component} missing: reduced mode)\n"
                   "\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n")


def stub_paths(unit: str) -> tuple[str, str]:
    """(whole stub unit, stub drop-in) paths for ``unit``."""
    return f"{STUB_DIR}/{unit}", f"{STUB_DIR}/{unit}.d/{STUB_DROPIN}"


def reinstall(transport: Transport, component: Component, fetched: FetchedDebs | None = None) -> Action:
    """Reinstall the component's cached packages; with ``fetched``, the ``.deb`` files the target's
    apt cache lacks are first taken from the orchestrator's download cache at the installed version
    (:mod:`orchestrator.bootdiag.fetched`). Raises: TransportError: target unreachable."""
    packages = [p for p in component.packages if PACKAGE_RE.match(p)]
    if not packages:
        return Action(ActionKind.REINSTALL, ActionStatus.SKIPPED, "no packages")
    cached = [p for p in packages if _is_cached(transport, p)]
    staged: list[str] = []
    if fetched is not None and len(cached) < len(packages):
        staged, _refused = stage_fetched(transport, fetched, [p for p in packages if p not in cached])
        cached += staged
    uncached = [p for p in packages if p not in cached]
    if not cached:
        return Action(ActionKind.REINSTALL, ActionStatus.SKIPPED,
                      f"no .deb of {', '.join(uncached)} in {APT_ARCHIVES}")
    # env: DEBIAN_FRONTEND keeps maintainer scripts from prompting on a console nobody watches.
    argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "--reinstall",
            "--no-download", "-y", "-o", "Dpkg::Options::=--force-confold",
            "-o", "Dpkg::Options::=--force-confmiss", *cached]
    try:
        result = run_outside_sandbox(transport, "reinstall", argv, timeout=REINSTALL_TIMEOUT_S,
                                     max_output=256 * 1024)
    except CommandTimeoutError:
        return Action(ActionKind.REINSTALL, ActionStatus.FAILED,
                      f"apt-get did not finish within {REINSTALL_TIMEOUT_S:g} s")
    if not result.succeeded:
        tail = command_output(result).strip().splitlines()[-3:]
        return Action(ActionKind.REINSTALL, ActionStatus.FAILED,
                      f"apt-get exited {result.exit_status}: {' | '.join(tail)}")
    skipped = f"; not cached: {', '.join(uncached)}" if uncached else ""
    taken = f" ({', '.join(staged)} copied from the orchestrator's download cache)" if staged else ""
    return Action(ActionKind.REINSTALL, ActionStatus.DONE,
                  f"reinstalled {', '.join(cached)} from the local package cache{taken}{skipped}")


def _is_cached(transport: Transport, package: str) -> bool:
    result = run_command(transport, ["find", APT_ARCHIVES, "-maxdepth", "1", "-type", "f", "-name",
                                     f"{package}_*.deb"], timeout=30)
    return result is not None and any(line.startswith(f"{APT_ARCHIVES}/{package}_")
                                      for line in result.stdout_text.splitlines())


def restore_baseline(transport: Transport, agent: AgentApi, component: Component,
                     baseline: BaselineReader | None) -> Action:
    """Config and unit paths back to the baseline. Raises: TransportError: target unreachable."""
    if baseline is None:
        return Action(ActionKind.RESTORE_BASELINE, ActionStatus.SKIPPED,
                      "no baseline of this target (record one with `vmrepair baseline`)")
    issue = Issue(component.name, IssueKind.CONFIG_INVALID, Severity.CRITICAL, component.name,
                  f"{component.name} is broken at boot", "bootdiag")
    ctx = RepairContext(transport, agent, issue, component, baseline=baseline)
    step = RestoreBaselineStep(scopes=("component",), paths=(), quarantine_added=())
    try:
        summary = run_restore_baseline(step, ctx, StepIO(ctx, "bootdiag", "restore_baseline"))
    except StepNotApplicableError as exc:
        return Action(ActionKind.RESTORE_BASELINE, ActionStatus.SKIPPED, exc.message)
    except RepairStepError as exc:
        return Action(ActionKind.RESTORE_BASELINE, ActionStatus.FAILED, exc.message)
    return Action(ActionKind.RESTORE_BASELINE, ActionStatus.DONE, summary)


def install_stubs(transport: Transport, agent: AgentApi, component: Component,
                  load_states: dict[str, str]) -> Action:
    """A stub for every service unit, then start it. Raises: TransportError: target unreachable."""
    units = [u for u in component.units if u.endswith(".service")]
    unsafe = [u for u in units if not _SERVICE_RE.match(u)]
    if not units or unsafe:
        why = f"unit names unsafe to write: {unsafe!r}" if unsafe else "no service unit to stand in for"
        return Action(ActionKind.STUB_UNIT, ActionStatus.SKIPPED if not unsafe else ActionStatus.FAILED,
                      why)
    for unit in units:
        whole, dropin = stub_paths(unit)
        # The name is config-validated already; a unit file is no place to trust that.
        values = {"unit": unit, "component": re.sub(r"[^A-Za-z0-9_.-]", "?", component.name)}
        body = _STUB_UNIT_BODY if load_states.get(unit) == "not-found" else _STUB_DROPIN_BODY
        path = whole if body is _STUB_UNIT_BODY else dropin
        agent.write_file(path, (_STUB_NOTE + body).format(**values).encode(), mode=0o644, uid=0, gid=0)
    systemd.daemon_reload(transport)
    failed = [c.describe() for c in (systemd.restart(transport, u) for u in units) if not c.succeeded]
    if failed:
        return Action(ActionKind.STUB_UNIT, ActionStatus.FAILED, "; ".join(failed))
    return Action(ActionKind.STUB_UNIT, ActionStatus.DONE,
                  f"stub for {', '.join(units)} in {STUB_DIR} until the next boot: dependants run, "
                  f"{component.name} does not (reduced mode)")


def find_stubs(agent: AgentApi, component: Component) -> list[tuple[str, str | None]]:
    """(path, sha256) of every vmrepair stub of the component's units.

    Raises:
        TransportError: the target cannot be reached.
    """
    found = []
    for unit in component.units:
        whole, dropin = stub_paths(unit)
        for path, entry in sorted(agent.manifest([whole, dropin]).by_path().items()):
            # A whole unit in /run may be someone else's: only ours carries the mark.
            if entry.type == "file" and (path == dropin or STUB_MARK.encode() in
                                         agent.read_file(path, max_bytes=64 * 1024)):
                found.append((path, entry.sha256))
    return found


def remove_stubs(transport: Transport, agent: AgentApi, component: Component) -> Action | None:
    """Remove the stubs of an earlier run (None when there are none), so the real unit is tried again.

    Raises:
        TransportError: the target cannot be reached.
    """
    found = find_stubs(agent, component)
    if not found:
        return None
    for path, sha256 in found:
        agent.remove_file(path, expect_sha256=sha256)
    systemd.daemon_reload(transport)
    return Action(ActionKind.REMOVE_STUB, ActionStatus.DONE,
                  f"removed {', '.join(path for path, _ in found)}")
