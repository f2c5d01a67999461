"""``modes:<component>``: owners and modes of a component's files against its last baseline.

A ``chmod -R`` or ``chown`` gone wrong leaves every file in place and every checksum intact, so no
other probe sees it, yet the service stops: nginx cannot read a 0600 site file as www-data, sshd
refuses a group-writable config, a unit file made world-writable is a privilege escalation. The
baseline recorded type, mode, uid and gid of every watched path when the host was healthy; this
probe reads the same paths (one recursive ``manifest`` of the component's config and unit paths,
the request the symlinks probe makes too, so a batch answers both) and reports every path whose
type, mode or owner differs.

Paths new since the baseline, or gone (other probes see absences), are not judged here. Without a
baseline the probe is not planned.

Failure: IssueKind.PERMISSIONS, critical for vital components, warning otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.agent.api import AgentApi, AgentRead, manifest_args
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.detect.symlinks import is_plain_root
from orchestrator.errors import AgentError, TransportError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity

PREFIX = "modes:"
#: At most this many differences are listed in the evidence (all are counted).
MAX_LISTED = 20

Recorded = Mapping[str, tuple[str, int, int, int]]


def probe_name(component: Component) -> str:
    return f"{PREFIX}{component.name}"


def roots(component: Component) -> list[str]:
    paths = dict.fromkeys((*component.config_paths, *component.unit_paths))
    return [p for p in paths if is_plain_root(p)]


def is_planned(component: Component, recorded: Recorded) -> bool:
    """Only where the baseline recorded some path of the component."""
    wanted = roots(component)
    return any(path == root or path.startswith(root + "/") for path in recorded for root in wanted)


def first_reads(component: Component) -> tuple[AgentRead, ...]:
    wanted = roots(component)
    return (("manifest", manifest_args(wanted)),) if wanted else ()


def _describe(kind: str, mode: int, uid: int, gid: int) -> str:
    return f"{kind} {mode:04o} {uid}:{gid}"


def evaluate(component: Component, now: Mapping[str, tuple[str, int, int, int]],
             recorded: Recorded) -> ProbeResult:
    """Compare ``now`` (path → type, mode, uid, gid) with ``recorded`` for the paths both hold."""
    pid = ProbeId(probe_name(component), component.name, IssueKind.PERMISSIONS, component.name)
    changed = [(path, recorded[path], state) for path, state in sorted(now.items())
               if path in recorded and recorded[path] != state]
    evidence = {"compared": str(sum(path in recorded for path in now))}
    if not changed:
        return pid.passed(f"{component.name}: owners and modes as in the baseline", evidence)
    listed = [f"{path}: {_describe(*before)} -> {_describe(*after)}" for path, before, after in changed]
    evidence["changed"] = cap_evidence("\n".join(listed[:MAX_LISTED]))
    path, before, _ = changed[0]
    evidence["remedy"] = (f"chown {before[2]}:{before[3]} {path} && chmod {before[1]:04o} {path} "
                          "(and the same for each path listed), or restore from the baseline")
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    return pid.failed(severity, f"{component.name}: {len(changed)} path(s) changed owner or mode since the "
                      f"baseline (first: {path})", evidence)


def probe_modes(agent: AgentApi, component: Component, recorded: Recorded) -> ProbeResult:
    """Raises: TransportError: the target cannot be reached (an agent error is unavailable)."""
    pid = ProbeId(probe_name(component), component.name, IssueKind.PERMISSIONS, component.name)
    try:
        manifest = agent.manifest(roots(component))
    except AgentError as exc:
        return pid.unavailable(f"manifest failed: {exc.message}")
    except TransportError:
        raise
    now = {e.path: (e.type, e.mode, e.uid, e.gid) for e in manifest.entries}
    return evaluate(component, now, recorded)
