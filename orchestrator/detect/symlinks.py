"""``symlinks:<component>`` probes: dangling symlinks among the component's config files.

Services keep "enabled" things as symlinks into an "available" directory (nginx's
``sites-enabled/default -> /etc/nginx/sites-available/default``, Apache's ``mods-enabled/*.load ->
../mods-available/*.load``). When the target goes, the running service does not notice, but its next
reload or start does, and refuses to come up. So a dangling link is PATH_MISSING, critical for a vital
component and a warning otherwise, found before that reload. A link that loops (``a -> b -> a``) is
dangling too: the service gets ELOOP instead of ENOENT.

How, in at most a few agent calls:

1. One recursive ``manifest`` of ``config_paths`` (declared as the probe's first read, so it travels in
   the detector's batch): every entry under them, symlinks with their targets, never followed.
2. Each link's target is resolved lexically (relative to the link's directory, ``posixpath.normpath``)
   and looked up in that manifest; a target that is itself a link is followed, up to
   :data:`MAX_HOPS` links.
3. Targets the manifest does not hold (outside the roots, or inside but not listed: the walk does not
   enter symlinked directories nor other file systems, so "not listed" is not yet "missing") are
   lstat()ed with one non-recursive ``manifest`` of all of them, whose ``missing`` is the verdict
   (the kernel resolves the directories on the way). Links of those targets go one more round, at most
   :data:`MAX_ROUNDS` in all.

Not looked up: targets under ``/proc`` and ``/sys``, whose entries the kernel makes up (a manifest
would hash a "regular file" such as /proc/kcore, 128 TiB); links past :data:`MAX_LINKS`; chains
still unresolved after the last round. They are counted in the evidence as unchecked, never failed.
A config path that does not exist holds no link: other probes report a missing config.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi, AgentRead, FileEntry, manifest_args
from orchestrator.components.ignore import covering
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.errors import AgentError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity

PREFIX = "symlinks:"
#: Links checked per component; /etc/apache2 has about a hundred.
MAX_LINKS = 512
#: Links followed from one link before it counts as a loop (the kernel gives up after 40; a config
#: link is one hop, two when "available" is itself a link).
MAX_HOPS = 8
#: Agent calls after the first manifest to look up targets it does not hold.
MAX_ROUNDS = 3
#: Dangling links named in the evidence (the count says how many there are in all).
MAX_LISTED = 20
#: Kernel-made trees: an entry there says nothing about the file system, and reading one may not end.
#: (/dev is looked up: its devices are listed, never read, and ``-> /dev/null`` is a common link.)
PSEUDO_ROOTS = ("/proc", "/sys")


def probe_name(component: Component) -> str:
    return f"{PREFIX}{component.name}"


def is_plain_root(path: str) -> bool:
    """An absolute, normalised path the agent accepts (``//x``, ``/x/`` and ``..`` it refuses)."""
    return (path.startswith("/") and "\0" not in path and not path.startswith("//")
            and posixpath.normpath(path) == path)


def roots(component: Component) -> list[str]:
    return [p for p in dict.fromkeys(component.config_paths) if is_plain_root(p)]


def first_reads(component: Component) -> tuple[AgentRead, ...]:
    """The manifest the probe starts with (batched by the Detector)."""
    wanted = roots(component)
    return (("manifest", manifest_args(wanted)),) if wanted else ()


def link_target(link_path: str, target: str) -> str | None:
    """Where the link at ``link_path`` points, as a normalised absolute path; None for a target no
    path can have (empty, or with a NUL). Resolved lexically: ``..`` after a symlinked directory may
    differ from what the kernel does, which config links do not rely on."""
    if not target or "\0" in target:
        return None
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(link_path), target)
    resolved = posixpath.normpath(joined)
    # POSIX keeps a leading "//" apart; Linux does not, and the agent refuses it.
    return "/" + resolved.lstrip("/") if resolved.startswith("//") else resolved


def _is_pseudo(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in PSEUDO_ROOTS)


@dataclass(frozen=True)
class Dangling:
    link: str
    #: The link's target as written.
    target: str
    reason: str

    def describe(self) -> str:
        return f"{self.link} -> {self.target} ({self.reason})"


@dataclass(frozen=True)
class LinkAnalysis:
    links: int
    dangling: tuple[Dangling, ...] = ()
    #: Links whose target was not looked up, with why (pseudo file system, caps, rounds).
    unchecked: tuple[str, ...] = ()


class _Resolver:
    """What is known about paths: entries from manifests, and paths known not to exist."""

    def __init__(self, entries: Sequence[FileEntry]) -> None:
        self.entries = {e.path: e for e in entries}
        self.missing: set[str] = set()

    def follow(self, link: FileEntry) -> tuple[str, str | None]:
        """("ok" | "dangling" | "loop" | "pseudo" | "lookup", the path to look up or that is missing)."""
        seen = {link.path}
        current = link_target(link.path, link.link or "")
        for _ in range(MAX_HOPS):
            if current is None:
                return "dangling", None
            if current in seen:
                return "loop", current
            if _is_pseudo(current):
                return "pseudo", current
            entry = self.entries.get(current)
            if entry is None:
                return ("dangling", current) if current in self.missing else ("lookup", current)
            if entry.type != "symlink":
                return "ok", current
            seen.add(current)
            current = link_target(current, entry.link or "")
        return "loop", current


def analyse(agent: AgentApi, component: Component) -> LinkAnalysis:
    """Find the dangling links under ``component.config_paths`` (rules in the module docstring).

    Raises:
        AgentError: the agent could not list or look up paths.
        TransportError: the target cannot be reached.
    """
    manifest = agent.manifest(roots(component))
    links = sorted((e for e in manifest.entries if e.type == "symlink"), key=lambda e: e.path)
    unchecked: list[str] = []
    if len(links) > MAX_LINKS:
        unchecked.append(f"{len(links) - MAX_LINKS} links past the first {MAX_LINKS}")
    links = links[:MAX_LINKS]
    resolver = _Resolver(manifest.entries)
    verdicts: dict[str, tuple[str, str | None]] = {}
    for round_ in range(MAX_ROUNDS + 1):
        verdicts = {link.path: resolver.follow(link) for link in links}
        lookups = sorted({p for state, p in verdicts.values() if state == "lookup" and p is not None})
        if not lookups or round_ == MAX_ROUNDS:
            break
        found = agent.manifest(lookups, recursive=False)
        resolver.entries.update((e.path, e) for e in found.entries)
        # A path the answer leaves out (it vanished between lstat and readlink) counts as missing.
        resolver.missing.update(p for p in lookups if p not in resolver.entries)
    dangling = []
    for link in links:
        state, path = verdicts[link.path]
        if state == "dangling":
            dangling.append(Dangling(link.path, link.link or "", f"{path} does not exist" if path
                                     else "a target no path can have"))
        elif state == "loop":
            dangling.append(Dangling(link.path, link.link or "", "a loop of symlinks"))
        elif state == "pseudo":
            unchecked.append(f"{link.path} -> {path} (kernel file system, not looked up)")
        elif state == "lookup":
            unchecked.append(f"{link.path} -> {path} (still a link after {MAX_ROUNDS} lookups)")
    return LinkAnalysis(len(links), tuple(dangling), tuple(unchecked))


def probe_symlinks(agent: AgentApi, component: Component, ignored: Sequence[str] = ()) -> ProbeResult:
    """Check the symlinks among ``component``'s config files; a dangling link ``ignored``
    (``watch.ignore_paths``) covers is left out of the verdict and counted in the evidence.

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    wanted = roots(component)
    pid = ProbeId(probe_name(component), component.name, IssueKind.PATH_MISSING,
                  f"symlinks under {' '.join(wanted) or '(no config path)'}")
    if not wanted:
        return pid.unavailable("no absolute, normalised config path to look in")
    try:
        analysis = analyse(agent, component)
    except AgentError as exc:
        return pid.unavailable(f"the agent could not list the config paths: {exc.message}")
    dropped = [d.link for d in analysis.dangling if covering(d.link, ignored) is not None]
    if not dropped:
        return verdict(pid, component, analysis)
    kept = tuple(d for d in analysis.dangling if d.link not in dropped)
    result = verdict(pid, component, dataclasses.replace(analysis, dangling=kept))
    listed = " ".join(dropped[:MAX_LISTED])
    note = f"{len(dropped)} dangling links under watch.ignore_paths, not judged: {listed}"
    return dataclasses.replace(result, evidence={**result.evidence, "ignored": cap_evidence(note, 1024)})


def verdict(pid: ProbeId, component: Component, analysis: LinkAnalysis) -> ProbeResult:
    """The probe's result for an analysis (rules in the module docstring)."""
    evidence = {"links": str(analysis.links)}
    if analysis.unchecked:
        evidence["unchecked"] = cap_evidence("\n".join(analysis.unchecked[:MAX_LISTED])
                                             + (f"\n... and {len(analysis.unchecked) - MAX_LISTED} more"
                                                if len(analysis.unchecked) > MAX_LISTED else ""))
    if not analysis.dangling:
        return pid.passed(f"{component.name}: none of {analysis.links} config symlinks dangles", evidence)
    listed = analysis.dangling[:MAX_LISTED]
    more = len(analysis.dangling) - len(listed)
    evidence["dangling"] = cap_evidence("\n".join(d.describe() for d in listed)
                                        + (f"\n... and {more} more" if more > 0 else ""))
    first = analysis.dangling[0]
    evidence["remedy"] = cap_evidence(
        f"bring the target back (a packaged file: apt-get install --reinstall the package that ships it) "
        f"or remove the link the service no longer needs: rm -- {first.link}", 1024)
    count = len(analysis.dangling)
    summary = (f"{component.name}: config symlink {first.link} -> {first.target} dangles" if count == 1
               else f"{component.name}: {count} config symlinks dangle, first {first.link} -> {first.target}")
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    return pid.failed(severity, cap_evidence(summary, 1024) + "; the service fails at its next reload",
                      evidence)
