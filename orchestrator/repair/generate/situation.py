"""What the generators look at: the issue, the component, the target's captured state, its newest
healthy baseline, and read-only questions to the troubleshooting VM (which holds the target's fault).

Everything here came from the target or the VM and is untrusted: paths are only ever proposed inside
the component's own paths (and the steps check them again), and text put in a description is capped.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from orchestrator import systemd
from orchestrator.agent.api import FileEntry, Manifest
from orchestrator.detect.common import cap_evidence, run_command
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, Issue
from orchestrator.transport.base import CommandResult, Transport

#: Properties of the unit the generators read in the VM.
UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath", "DropInPaths",
                   "User", "Group", "StateDirectory", "StateDirectoryMode", "LogsDirectory",
                   "LogsDirectoryMode", "WorkingDirectory")
READ_TIMEOUT_S = 60.0
#: A read-only command for the VM and how long it may take (what a family asks, see ``questions``).
Question = tuple[list[str], float]
#: Characters of target text (a path, a state) quoted in a description.
QUOTE_MAX = 200
#: An absolute path in free text: up to the first space, quote, bracket or ``:line``.
PATH_IN_TEXT = re.compile(r"(?<![\w./-])(/(?:[\w.@+-]+/)*[\w.@+-]+)")
#: Symlinks :meth:`Situation.resolve` follows in a row (the kernel's own limit is 40).
MAX_LINK_HOPS = 8


class KnownGood(Protocol):
    """The newest healthy baseline as generators read it (:class:`orchestrator.baseline.store.Baseline`)."""

    @property
    def units(self) -> Mapping[str, Any]:
        """Unit -> {"ActiveState", "UnitFileState", ...} when the baseline was recorded."""

    def by_path(self) -> dict[str, FileEntry]:
        """Every recorded path's entry (absolute, normalised)."""


def quote(text: str) -> str:
    return cap_evidence(text, QUOTE_MAX)


@dataclass
class Situation:
    """One issue as the generators see it. ``vm`` is only ever asked read-only questions; its answers
    are cached for the run of all families."""

    issue: Issue
    component: Component
    #: The target's state of the captured paths (the capture's manifest).
    target: Manifest
    baseline: KnownGood | None
    vm: Transport
    #: The paths the capture covers (what a fix package can carry back to the target).
    captured: tuple[str, ...] = ()
    #: Below ``captured`` but ignored (``watch.ignore_paths``): neither captured nor carried back.
    excluded: tuple[str, ...] = ()
    #: The VM's answers, shared by the situations of one diagnosis (the primary issue's and its related
    #: ones ask the same questions of the same VM).
    _shown: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    _asked: dict[tuple[str, ...], CommandResult | None] = field(default_factory=dict, repr=False)

    @cached_property
    def now(self) -> dict[str, FileEntry]:
        return self.target.by_path()

    @cached_property
    def recorded(self) -> dict[str, FileEntry]:
        return {} if self.baseline is None else self.baseline.by_path()

    @cached_property
    def evidence_text(self) -> str:
        """The subject, summary and evidence of the issue as one text, to look for paths in."""
        return "\n".join([self.issue.subject, self.issue.summary, *self.issue.evidence.values()])

    @cached_property
    def evidence_paths(self) -> tuple[str, ...]:
        """Absolute paths the issue's evidence names, in order of first mention."""
        return tuple(dict.fromkeys(m.group(1) for m in PATH_IN_TEXT.finditer(self.evidence_text)))

    @cached_property
    def named_paths(self) -> frozenset[str]:
        """The evidence's paths, and where the captured symlinks among them lead: a config test reports
        the path it opened (``sites-enabled/default``), dpkg the file it ships."""
        return frozenset({*self.evidence_paths, *(self.resolve(p) for p in self.evidence_paths)})

    def names(self, path: str) -> bool:
        """The evidence names ``path`` (or something below it), itself or through a captured symlink."""
        return any(p == path or p.startswith(path.rstrip("/") + "/") for p in self.named_paths)

    def resolve(self, path: str) -> str:
        """``path`` with the symlinks the capture recorded followed (at most :data:`MAX_LINK_HOPS`);
        a link whose target the capture does not cover ends the walk at that target. Only the
        manifest's text is read: no path on the target or in the VM is followed."""
        seen = {path}
        for _ in range(MAX_LINK_HOPS):
            entry = self.now.get(path)
            if entry is None or entry.type != "symlink" or not entry.link:
                return path
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.link))
            if target in seen:
                return path   # a loop: the link itself is what there is
            seen.add(target)
            path = target
        return path

    @property
    def units(self) -> tuple[str, ...]:
        """The component's units, the issue's own first."""
        own = self.component.units
        return tuple(dict.fromkeys([u for u in own if u == self.issue.subject] + list(own)))

    # -- read-only questions to the VM --------------------------------------------------------------
    def show(self, unit: str) -> dict[str, str]:
        """``systemctl show`` of ``unit`` in the VM (:data:`UNIT_PROPERTIES`); {} when it cannot tell.

        Raises:
            TransportError: the VM cannot be reached.
        """
        self.show_many([unit])
        return self._shown.get(unit, {})

    def show_many(self, units: Sequence[str]) -> None:
        """``systemctl show`` of the ``units`` not asked yet, in one call (each is a guest process);
        the answers wait for :meth:`show`. A unit systemd printed no block for is left to :meth:`show`
        to ask alone (blocks are matched by position).

        Raises:
            TransportError: the VM cannot be reached.
        """
        asked = [unit for unit in dict.fromkeys(units) if unit not in self._shown]
        if not asked:
            return
        answer = systemd.show(self.vm, asked, UNIT_PROPERTIES, max_value=4096)
        if answer.unavailable_reason is not None:
            self._shown.update((unit, {}) for unit in asked)
        elif len(answer.units) == len(asked):
            self._shown.update((unit, info.properties)
                               for unit, info in zip(asked, answer.units, strict=True))
        elif len(asked) == 1:
            self._shown[asked[0]] = {}

    def ask(self, argv: Sequence[str], *, timeout: float = READ_TIMEOUT_S) -> CommandResult | None:
        """Run a read-only command in the VM; None when it is not installed or did not finish.

        Raises:
            TransportError: the VM cannot be reached.
        """
        key = tuple(argv)
        if key not in self._asked:
            try:
                self._asked[key] = run_command(self.vm, list(argv), timeout=timeout)
            except CommandTimeoutError:
                self._asked[key] = None
        return self._asked[key]


def parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or "/"
