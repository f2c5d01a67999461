"""Dependency score of a component, 0-100: what it relies on, rather than the component itself.

=================================================  ======  =========================================
finding                                            points  how
=================================================  ======  =========================================
``dpkg --audit`` names one of its packages             40  one run per diagnosis; empty output = ok
``dpkg --audit`` names other packages only             10  a broken dpkg state blocks upgrades of all
``pip check`` finds broken requirements                30  Python apps: the interpreter of ExecStart
a Requires/Requisite/BindsTo unit failed or is gone    25  ``systemctl show`` of the unit, then of
a Wants unit failed                                    10  its dependencies, in one call
=================================================  ======  =========================================

A Python app is recognised without configuration: a unit whose ``ExecStart`` program is a Python
interpreter (``/usr/bin/python3``, ``/opt/app/venv/bin/python``) gets ``<that python> -m pip check``.
Checks that cannot run (no dpkg, no pip for that interpreter) lower nothing and are noted.
Each finding carries its :class:`~orchestrator.bootdiag.result.FindingKind`, from which
:mod:`orchestrator.bootdiag.verdict` decides whether a restart could help.

Boot diagnostics score every component with one ``dpkg --audit`` for all; the health monitor and the
repair pipeline's triage score one component when they would restart it (:func:`score_on_target`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from orchestrator import systemd
from orchestrator.bootdiag.result import DependencyScore, Finding, FindingKind
from orchestrator.detect.common import cap_evidence, run_command
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component
from orchestrator.transport.base import Transport

CHECK_TIMEOUT_S = 60.0
#: Hard dependencies: the unit does not start (or stops) without them.
HARD = ("Requires", "Requisite", "BindsTo")
#: Dependencies listed per unit at most; a service has a handful, anything more is not ours to score.
MAX_DEPENDENCIES = 64
_PYTHON_RE = re.compile(r"^python[0-9.]*$")
_EXEC_PATH_RE = re.compile(r"\bpath=([^ ;]+)")
_NO_PIP = "No module named pip"
#: ExecStart and dependency lists can be long; the probe output cap bounds them anyway.
_MAX_VALUE = 16 * 1024


def dpkg_audit(transport: Transport) -> str | None:
    """What ``dpkg --audit`` reports (empty: nothing); None when it cannot run on the target.

    Raises:
        TransportError: the target cannot be reached.
    """
    try:
        result = run_command(transport, ["dpkg", "--audit"], timeout=CHECK_TIMEOUT_S)
    except CommandTimeoutError:
        return None
    return None if result is None else cap_evidence(result.stdout_text.strip(), 2048)


def score_component(
    transport: Transport, component: Component, *, audit_output: str | None,
    load_states: dict[str, str],
) -> DependencyScore:
    """Score ``component`` (table in the module docstring). ``audit_output`` is this diagnosis' one
    ``dpkg --audit`` answer; ``load_states`` the units' LoadState (units not found are skipped).

    Raises:
        TransportError: the target cannot be reached.
    """
    findings: list[Finding] = []
    notes: list[str] = []
    if component.packages:
        _dpkg(component, audit_output, findings, notes)
    units = [u for u in component.units if load_states.get(u, "not-found") != "not-found"]
    for unit in units:
        props = _show(transport, unit, ("ExecStart", *HARD, "Wants"))
        _pip(transport, unit, props.get("ExecStart", ""), findings, notes)
        _unit_dependencies(transport, unit, props, findings)
    return DependencyScore(tuple(findings), tuple(notes))


def score_on_target(transport: Transport, component: Component) -> DependencyScore:
    """Score ``component`` on its own: its one ``dpkg --audit`` (only when it has packages) and its
    units' LoadState are asked here. Units systemd cannot be asked about are not scored (noted).

    Raises:
        TransportError: the target cannot be reached.
    """
    audit_output = dpkg_audit(transport) if component.packages else None
    load_states: dict[str, str] = {}
    notes: tuple[str, ...] = ()
    if component.units:
        answer = systemd.show(transport, list(component.units), ("LoadState",), timeout=CHECK_TIMEOUT_S)
        # One UnitInfo per unit asked, in the order asked.
        load_states = {unit: info.load_state for unit, info in zip(component.units, answer.units,
                                                                    strict=False)}
        if answer.unavailable_reason is not None:
            notes = (f"units not scored: {answer.unavailable_reason}",)
    score = score_component(transport, component, audit_output=audit_output, load_states=load_states)
    return DependencyScore(score.findings, (*notes, *score.notes))


def _dpkg(component: Component, output: str | None, findings: list[Finding], notes: list[str]) -> None:
    if output is None:
        notes.append("dpkg --audit could not run")
        return
    if not output:
        return
    words = set(re.split(r"[\s:,]+", output))
    named = [p for p in component.packages if p in words]
    first = output.splitlines()[0]
    if named:
        findings.append(Finding(40, f"dpkg --audit names {', '.join(named)}: {first}",
                                FindingKind.OWN_PACKAGE))
    else:
        findings.append(Finding(10, f"dpkg --audit reports other packages: {first}",
                                FindingKind.OTHER_PACKAGES))


def _show(transport: Transport, unit: str, properties: Sequence[str]) -> dict[str, str]:
    # A check that cannot ask systemd lowers nothing: no properties, no findings.
    answer = systemd.show(transport, [unit], properties, timeout=CHECK_TIMEOUT_S, max_value=_MAX_VALUE)
    return answer.units[0].properties if answer.units else {}


def _pip(transport: Transport, unit: str, exec_start: str, findings: list[Finding],
         notes: list[str]) -> None:
    match = _EXEC_PATH_RE.search(exec_start)
    python = match.group(1) if match else ""
    if not python.startswith("/") or not _PYTHON_RE.match(posixpath.basename(python)):
        return
    try:
        result = run_command(transport, [python, "-m", "pip", "check"], timeout=CHECK_TIMEOUT_S)
    except CommandTimeoutError:
        notes.append(f"pip check of {python} did not finish")
        return
    output = "" if result is None else (result.stdout_text + result.stderr_text).strip()
    if result is None or _NO_PIP in output:
        notes.append(f"pip check: pip is not installed for {python} ({unit})")
    elif not result.succeeded:
        first = cap_evidence(output.splitlines()[0] if output else f"exit {result.exit_status}", 300)
        findings.append(Finding(30, f"pip check ({python}, {unit}): {first}", FindingKind.PIP_CHECK))


def _unit_dependencies(transport: Transport, unit: str, props: dict[str, str],
                       findings: list[Finding]) -> None:
    kinds: dict[str, str] = {}
    for kind in (*HARD, "Wants"):
        for dep in props.get(kind, "").split():
            kinds.setdefault(dep, kind)
    deps = list(kinds)[:MAX_DEPENDENCIES]
    if not deps:
        return
    answer = systemd.show(transport, deps, ("Id", "LoadState", "ActiveState"), timeout=CHECK_TIMEOUT_S)
    # One UnitInfo per unit asked, in the order asked.
    for info, dep in zip(answer.units, deps, strict=False):
        hard, name = kinds[dep] in HARD, cap_evidence(dep, 200)
        if info.active_state == "failed":
            kind = FindingKind.HARD_DEPENDENCY if hard else FindingKind.SOFT_DEPENDENCY
            findings.append(Finding(25 if hard else 10, f"{unit} {kinds[dep]}= {name}, which failed", kind))
        elif hard and info.load_state == "not-found":
            findings.append(Finding(25, f"{unit} {kinds[dep]}= {name}, which does not exist",
                                    FindingKind.HARD_DEPENDENCY))
