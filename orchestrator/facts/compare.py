"""Does the troubleshooting VM have what the target has, for the affected components?

A probe that fails in the VM because the VM lacks the unit, the package or the program the target
has is not a reproduction: it fails for another reason. :func:`environment_differences` names each
such difference; the reproduce stage refuses to call the fault reproduced while any remains.
Package *versions* that differ are reported too (as notes: the fault may still reproduce).
"""

from __future__ import annotations

import concurrent.futures
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.facts.model import TargetFacts
from orchestrator.facts.parse import parse_packages
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.model import Component
from orchestrator.systemd import show
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed

#: LoadStates meaning "systemd has no such unit here".
ABSENT = frozenset({"not-found"})
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Differences:
    #: What the VM lacks that the target has: a probe failing there proves nothing.
    missing: tuple[str, ...] = ()
    #: What differs but exists on both sides (package versions): reported, not disqualifying.
    notes: tuple[str, ...] = ()

    @property
    def is_faithful(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, list[str]]:
        return {"missing_in_vm": list(self.missing), "notes": list(self.notes)}


def environment_differences(target: TargetFacts, target_units: dict[str, dict[str, str]],
                            vm: Transport, components: Sequence[Component], *,
                            target_lacks: Sequence[str] = ()) -> Differences:
    """Compare the components' units and packages on the target with the VM's.

    ``target_units`` are the units' properties as captured on the target (``LoadState`` ...);
    ``target_lacks`` are packaged files missing on the target too (the capture's ``dpkg --verify``):
    a config test program among them is missing in the VM *because* it is on the target, which is
    the fault reproduced, not an environment difference.

    Raises:
        TransportError: the VM stopped answering.
    """
    units = sorted({u for c in components for u in c.units})
    present_on_target = [u for u in units
                         if target_units.get(u, {}).get("LoadState", "loaded") not in ABSENT]
    lacking = {*target_lacks, *(posixpath.basename(p) for p in target_lacks)}
    programs = {c.name: c.config_test[0] for c in components if c.config_test}
    wanted = sorted({p for c in components for p in c.packages if target.package(p) is not None})
    # Every question is one guest process (a few hundred ms under TCG each) and none depends on
    # another: asked side by side, answered in the order below.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="compare") as pool:
        shown = pool.submit(show, vm, present_on_target, ("Id", "LoadState")) if present_on_target else None
        has = {name: pool.submit(_has_program, vm, program)
               for name, program in programs.items() if program not in lacking}
        queried = pool.submit(run_if_installed, vm, ["dpkg-query", "-W", "-f", PACKAGE_FORMAT, "--", *wanted],
                              timeout=TIMEOUT_S) if wanted else None
        missing: list[str] = []
        notes: list[str] = []
        if shown is not None:
            answer = shown.result()
            if answer.unavailable_reason:
                missing.append(f"systemd in the VM: {answer.unavailable_reason}")
            for unit, info in zip(present_on_target, answer.units, strict=False):
                if info.load_state in ABSENT:
                    missing.append(f"unit {unit} exists on the target but not in the VM")
        for name, program in programs.items():
            if program in lacking:
                notes.append(f"program {program} (config test of {name}) is missing on the target "
                             "too (dpkg --verify): the fault, mirrored")
            elif not has[name].result():
                missing.append(f"program {program} (config test of {name}) is not in the VM")
        result = queried.result() if queried is not None else None
    if wanted:
        in_vm = {p.name: p for p in parse_packages(result.stdout_text).items} if result is not None else {}
        for name in wanted:
            theirs, ours = target.package(name), in_vm.get(name)
            if theirs is None:
                continue
            if ours is None or (not ours.is_installed and ours.status != theirs.status):
                # An unfinished state the VM was given to match the target's (half-configured ...)
                # is the target's state, not a difference.
                missing.append(f"package {name} {theirs.version} is installed on the target, not in the VM")
            elif ours.version != theirs.version:
                notes.append(f"package {name}: {theirs.version} on the target, {ours.version} in the VM")
    return Differences(tuple(missing), tuple(notes))


def _has_program(vm: Transport, program: str) -> bool:
    # The name travels as "$1", never inside the script: no shell parses it.
    result = vm.run(["sh", "-c", 'command -v -- "$1" >/dev/null', "sh", program], timeout=TIMEOUT_S)
    return result.succeeded
