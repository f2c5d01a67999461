"""Which packages a host layer carries: what the target has that the template lacks, or has at another
version, among the packages that matter.

The packages that matter are the affected components' own (named in their configuration, or owning
their unit files on the target) and everything they depend on, as the target's package database says
(``Pre-Depends`` and ``Depends``, alternatives resolved to what is installed there, virtual names to their
providers) — or, with ``layers.scope: all``, every package installed on the target. Two targets that
need the same packages at the same versions over the same template share one layer: that set, with the
template's recipe hash, is the layer's key.

Read-only on the target: one ``dpkg-query`` for the dependency graph, one ``dpkg-query -S`` for the units'
owners. Everything read is untrusted and passes the same syntax checks as the facts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.settings import LayerSettings
from orchestrator.errors import LayerError
from orchestrator.facts.model import Package, TargetFacts
from orchestrator.facts.parse import ARCH, PACKAGE_NAME, VERSION, parse_dpkg_search, parse_packages
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.fsutil import atomic_write
from orchestrator.model import Component
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed

log = logging.getLogger(__name__)

DEPENDS_FORMAT = "${binary:Package}\t${Provides}\t${Pre-Depends}\t${Depends}\n"
UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system")
MAX_OUTPUT = 32 * 1024 * 1024
TIMEOUT_S = 60.0
#: Format of the key (bump when what a layer contains for the same inputs changes).
KEY_FORMAT = 1
#: One alternative of a relation: ``name[:arch] [(op version)] [[archs]] [<profiles>]``.
_RELATION = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(.*\))?\s*"
                       r"(?:\[.*\])?\s*(?:<.*>)?\s*$")


@dataclass(frozen=True)
class LayerPlan:
    """What a layer must add to the template for this target, and why it could not be planned."""

    template: str
    recipe_hash: str
    #: The packages that matter, by name (seeds and their dependencies on the target).
    wanted: tuple[str, ...]
    #: Exactly what the layer installs: the target's package at the target's version and architecture.
    needed: tuple[Package, ...]
    notes: tuple[str, ...] = ()
    #: Why no layer can be built for this target (the run then stays on the template and says so).
    refused: str = ""

    @property
    def key(self) -> str:
        """Same template build + same package set = same layer, whichever target asked for it."""
        digest = hashlib.sha256(f"vmrepair-layer:{KEY_FORMAT}\n{self.recipe_hash}\n".encode())
        for spec in sorted(p.spec for p in self.needed):
            digest.update(spec.encode() + b"\n")
        return digest.hexdigest()

    @property
    def is_needed(self) -> bool:
        return bool(self.needed) and not self.refused

    def as_dict(self) -> dict[str, object]:
        return {"template": self.template, "key": self.key if self.needed else "",
                "wanted": len(self.wanted), "needed": [p.spec for p in self.needed],
                "notes": list(self.notes), "refused": self.refused}


def parse_relations(field: str) -> list[list[str]]:
    """``a (>= 1) | b, c:any`` → ``[["a", "b"], ["c"]]``. Clauses with a name outside Debian's syntax
    are dropped (untrusted text)."""
    clauses: list[list[str]] = []
    for clause in field.split(","):
        if not clause.strip():
            continue
        names = []
        for alternative in clause.split("|"):
            match = _RELATION.match(alternative)
            if match and PACKAGE_NAME.match(match.group(1)):
                names.append(match.group(1))
        if names:
            clauses.append(names)
    return clauses


@dataclass(frozen=True)
class DependencyGraph:
    """The target's installed packages' dependencies: name → clauses of alternatives; provider map."""

    depends: Mapping[str, tuple[tuple[str, ...], ...]]
    providers: Mapping[str, tuple[str, ...]]

    @classmethod
    def parse(cls, text: str) -> DependencyGraph:
        depends: dict[str, tuple[tuple[str, ...], ...]] = {}
        providers: dict[str, list[str]] = {}
        for line in text.splitlines():
            fields = line.split("\t")
            if len(fields) != 4:
                continue
            name = fields[0].split(":", 1)[0]
            if not PACKAGE_NAME.match(name):
                continue
            for provided in parse_relations(fields[1]):
                providers.setdefault(provided[0], []).append(name)
            clauses = parse_relations(fields[2]) + parse_relations(fields[3])
            depends[name] = tuple(tuple(c) for c in clauses)
        return cls(depends, {k: tuple(v) for k, v in providers.items()})

    def closure(self, seeds: Iterable[str], installed: Mapping[str, Package]) -> list[str]:
        """Every installed package reachable from ``seeds``; of a clause's alternatives, the first one
        installed (directly or as a provider of a virtual name) is the one the target uses."""
        seen: set[str] = set()
        stack = [s for s in seeds if s in installed]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for clause in self.depends.get(name, ()):
                chosen = self._resolve(clause, installed)
                if chosen is not None and chosen not in seen:
                    stack.append(chosen)
        return sorted(seen)

    def _resolve(self, clause: Sequence[str], installed: Mapping[str, Package]) -> str | None:
        for alternative in clause:
            if alternative in installed:
                return alternative
        for alternative in clause:
            for provider in self.providers.get(alternative, ()):
                if provider in installed:
                    return provider
        return None


def unit_owners(target: Transport, components: Sequence[Component]) -> tuple[set[str], list[str]]:
    """The packages that own the components' unit files on the target (a component configured without
    ``packages:`` still gets its service's package)."""
    units = sorted({u for c in components for u in c.units})
    if not units:
        return set(), []
    paths = [f"{d}/{u}" for u in units for d in UNIT_DIRS]
    result = run_if_installed(target, ["dpkg-query", "-S", "--", *paths], timeout=TIMEOUT_S)
    if result is None:
        return set(), ["unit owners: dpkg-query is not installed on the target"]
    owners: set[str] = set()
    for packages in parse_dpkg_search(result.stdout_text).values():
        owners.update(p.strip().split(":", 1)[0] for p in packages.split(","))
    return owners, []


def read_graph(target: Transport) -> tuple[DependencyGraph, list[str]]:
    result = run_if_installed(target, ["dpkg-query", "-W", "-f", DEPENDS_FORMAT], timeout=TIMEOUT_S,
                              max_output=MAX_OUTPUT)
    if result is None or not result.succeeded:
        return DependencyGraph({}, {}), ["dependencies: the target's package database cannot be read"]
    notes = ["dependencies: the answer was cut; the closure may be incomplete"] if result.is_truncated else []
    return DependencyGraph.parse(result.stdout_text), notes


def template_packages(vm: Transport) -> dict[str, Package]:
    """The template's packages, read in a VM booted from it (one command, about 0.3 s).

    Raises:
        LayerError: the answer is incomplete.
    """
    return _installed(_list_packages(vm))


def _list_packages(vm: Transport) -> str:
    """The template VM's complete ``dpkg-query`` listing. An incomplete one (failed, cut)
    would make every package it lacks look missing from the template and build a layer for nothing,
    so it is refused instead: the sandbox then stays on the template and says why.

    Raises:
        LayerError: the answer is incomplete.
    """
    result = vm.run(["dpkg-query", "-W", "-f", PACKAGE_FORMAT], timeout=TIMEOUT_S, max_output=MAX_OUTPUT)
    if not result.succeeded or result.is_truncated:
        why = "was cut" if result.is_truncated else f"failed (exit {result.exit_status})"
        raise LayerError(f"the template VM's package list {why}; its packages are unknown", step="plan",
                         remedy="rebuild the template (`vmrepair image build`)")
    return result.stdout_text


def _installed(listing: str) -> dict[str, Package]:
    return {p.name: p for p in parse_packages(listing).items if p.is_installed}


#: What a template's VM says about itself, kept beside its image: the same for every VM of one recipe.
TEMPLATE_FACTS = "template-facts.json"


def template_facts(image_dir: Path, recipe_hash: str, vm: Transport) -> tuple[str, dict[str, Package]]:
    """The template's architecture and packages: read once in a VM of the template, then from
    ``image_dir`` for every later run of the same recipe (two guest commands fewer per repair: about
    1.7 s under TCG with the target's probes running, measured). The cached text is parsed with the
    same strict parser as a fresh answer; a file that does not parse, or is of another recipe, is read
    again from the VM and rewritten.

    Raises:
        TransportError, CommandFailedError: the VM could not be asked.
        LayerError: its package list is incomplete.
    """
    path = image_dir / TEMPLATE_FACTS
    try:
        cached = json.loads(path.read_bytes())
        if cached.get("recipe_hash") == recipe_hash and ARCH.fullmatch(str(cached.get("arch", ""))):
            return str(cached["arch"]), _installed(str(cached["packages"]))
    except (OSError, ValueError, KeyError, AttributeError):
        pass   # absent or unreadable: asked below, as the first time
    arch = vm.check(["dpkg", "--print-architecture"], timeout=TIMEOUT_S).stdout_text.strip()
    listing = _list_packages(vm)
    packages = _installed(listing)
    if ARCH.fullmatch(arch) and packages:
        try:
            atomic_write(path, json.dumps({"recipe_hash": recipe_hash, "arch": arch,
                                           "packages": listing}).encode(), mode=0o644)
        except OSError as exc:   # a read-only image store only costs the two commands next time
            log.warning("cannot keep the template's facts in %s: %s", path, exc)
    return arch, packages


def plan_layer(*, target: Transport, facts: TargetFacts, components: Sequence[Component],
               template: str, recipe_hash: str, template_arch: str, template_os: tuple[str, str],
               in_template: Mapping[str, Package], settings: LayerSettings) -> LayerPlan:
    """What the layer for this target contains (possibly nothing: the template already matches).

    Raises:
        TransportError: the target stopped answering.
    """
    def refuse(why: str, notes: Sequence[str] = ()) -> LayerPlan:
        return LayerPlan(template, recipe_hash, (), (), tuple(notes), refused=why)

    os_id, suite = template_os
    if facts.os.id != os_id or (facts.os.codename and facts.os.codename != suite):
        # Another release's packages over this template would mirror nothing faithfully.
        return refuse(f"the target runs {facts.os} ({facts.os.id} {facts.os.codename or '?'}), the template "
                      f"{template} is {os_id} {suite}: packages of one release cannot be layered on another; "
                      f"remedy: `vmrepair image build --suite {facts.os.codename or 'NAME'}`"
                      if facts.os.id == os_id else
                      f"the target runs {facts.os}, which no Debian template can mirror")
    if facts.arch and facts.arch != template_arch:
        return refuse(f"the target's architecture {facts.arch} is not the template's {template_arch}")
    installed = {p.name: p for p in facts.packages if p.status[:1] == "i"}
    if not installed:
        return refuse("the target's package database lists no installed packages", facts.notes)
    notes: list[str] = []
    if settings.scope == "all":
        wanted = sorted(installed)
    else:
        owners, owner_notes = unit_owners(target, components)
        notes += owner_notes
        seeds = {p for c in components for p in c.packages} | owners
        graph, graph_notes = read_graph(target)
        notes += graph_notes
        wanted = graph.closure(seeds, installed)
    needed = []
    for name in wanted:
        theirs, ours = installed[name], in_template.get(name)
        if ours is not None and ours.version == theirs.version:
            continue
        if not (PACKAGE_NAME.match(theirs.name) and VERSION.match(theirs.version)
                and ARCH.match(theirs.arch)):
            notes.append(f"{name}: refused (not in the syntax Debian allows)")
            continue
        needed.append(theirs)
        if theirs.status != "ii":
            notes.append(f"{name} {theirs.version} is {theirs.status} on the target; "
                         "the layer installs it fully")
    if len(needed) > settings.max_packages:
        return refuse(f"the layer would install {len(needed)} packages, more than layers.max_packages "
                      f"({settings.max_packages})", notes)
    return LayerPlan(template, recipe_hash, tuple(wanted), tuple(needed), tuple(notes))
