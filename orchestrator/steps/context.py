"""What a repair step needs: the VM (transport + agent), the issue, the watched components, the
diagnosis variables, when the target has one its baseline and, when the run can obtain them, the
target's exact ``.deb`` files."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from orchestrator.agent.api import AgentApi
from orchestrator.model import Component, Issue
from orchestrator.playbooks.placeholders import builtin_values, merge_values
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport

#: Default wall-clock limit of one command of a step, when the step does not set its own.
DEFAULT_STEP_TIMEOUT_S = 120.0


class BaselineReader(Protocol):
    """The target's known-good state (captured earlier), read-only.

    Paths are absolute and normalised. Implementations raise nothing for unknown paths: they answer
    None / an empty list.
    """

    def read(self, path: str) -> bytes | None:
        """Content of a regular file in the baseline; None when absent, not a regular file, or kept only
        as a placeholder (too large to capture)."""

    def entry(self, path: str) -> tuple[int, int, int] | None:
        """``(mode, uid, gid)`` of any path in the baseline (file, directory, symlink); None if absent."""

    def paths_under(self, prefix: str) -> list[str]:
        """Every baseline path equal to ``prefix`` or below it (files, directories, symlinks)."""

    def covers(self, path: str) -> bool:
        """True when ``path`` lies under a path the baseline watched when it was recorded. Where it
        watched nothing, the baseline says nothing: a file there is not "added since the baseline"."""


@runtime_checkable
class SymlinkBaseline(Protocol):
    """Optional extra of a :class:`BaselineReader`: symlink targets, so a removed or re-pointed symlink
    (a disabled nginx site) can be restored. Without it symlinks are left as they are."""

    def link(self, path: str) -> str | None:
        """The target of a symlink in the baseline; None when ``path`` is not a symlink there."""


@dataclass(frozen=True)
class VerifiedDeb:
    """A ``.deb`` on the orchestrator's disk that is exactly ``name``/``version``/``arch`` (checked with
    dpkg-deb) and whose content hashes to ``sha256`` (checked when it was obtained)."""

    name: str
    version: str
    arch: str
    path: Path
    sha256: str
    size: int
    #: Where it came from (``target-cache``, ``mirror``), for the notes.
    source: str


class DebSource(Protocol):
    """The target's packages as verified ``.deb`` files (:class:`orchestrator.layers.exact.TargetDebs`
    in a run; tests pass their own)."""

    def obtain(self, name: str, version: str, arch: str) -> VerifiedDeb:
        """The ``.deb`` of ``name:arch`` at ``version``, which must be the version the target has.

        Raises:
            LayerError: the target has another version (or none), or no verified copy can be had.
        """

    def content(self, name: str, version: str, arch: str, sha256: str) -> bytes | None:
        """The content of a ``.deb`` obtained earlier, checked against ``sha256`` again; None if it is
        not there or does not match."""


def default_stamp() -> str:
    """Names this attempt's quarantine directory: sortable, and unique across attempts."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class RepairContext:
    """Everything :func:`~orchestrator.repair.execute.execute_strategy` and the steps need for one attempt.

    ``components`` are all watched components (``reduce_logs`` works over all of their log_paths);
    ``variables`` are the diagnosis variables (untrusted: each is checked before it fills a placeholder).
    ``sleep`` and ``clock`` are injectable so tests never wait.
    """

    transport: Transport
    agent: AgentApi
    issue: Issue
    component: Component
    components: Sequence[Component] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    baseline: BaselineReader | None = None
    session: Session | None = None
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    #: Paths imported as placeholders (size and metadata only): their VM content is not real data.
    placeholders: frozenset[str] = frozenset()
    #: The target's exact .debs (``reinstall_package``); None when the run has no way to obtain them.
    debs: DebSource | None = None
    stamp: str = field(default_factory=default_stamp)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    #: Seconds the validation after these steps watches the component's own units under load (its
    #: stability period; 0 when none follows). ``wait_active`` on one of those units leaves its settle
    #: to that period, which is at least as long and under load, instead of waiting twice.
    settle_watched_s: float = 0.0

    def values(self) -> dict[str, str]:
        """Placeholder values: the valid built-ins of the issue/component plus the valid variables."""
        return merge_values(builtin_values(self.issue, self.component), self.variables)

    @property
    def watched(self) -> tuple[Component, ...]:
        """All watched components, including this one even if the caller left it out."""
        names = {c.name for c in self.components}
        extra = () if self.component.name in names else (self.component,)
        return tuple(self.components) + extra
