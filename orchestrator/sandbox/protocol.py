"""What the pipeline needs of a troubleshooting environment, as a protocol.

:class:`orchestrator.sandbox.vm.TroubleshootingVm` (libvirt/QEMU) implements it for real runs; unit tests
use a fake built on :class:`~orchestrator.transport.fake.FakeTransport`. Nothing in the pipeline names
libvirt: the driver receives a factory. It lives with its implementation (the sandbox seam) so both
the pipeline above and the VM below import it downwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.agent.api import AgentApi, UnpackResult
from orchestrator.boot.host import RebootResult
from orchestrator.capture.snapshot import Capture
from orchestrator.facts.compare import Differences
from orchestrator.facts.model import TargetFacts
from orchestrator.layers.build import LayerResult
from orchestrator.layers.plan import LayerPlan
from orchestrator.layers.use import LayerUse
from orchestrator.model import Component
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport


@dataclass
class ImportReport:
    unpack: UnpackResult | None
    error: str | None
    #: Unit states given to the VM to match the target (``mask nginx.service: done``).
    unit_states: tuple[str, ...] = ()
    #: Paths removed from the VM because the target lacks them (inside the captured roots).
    removed: tuple[str, ...] = ()
    #: Packages given the target's unfinished dpkg state (``nginx-common:all 1.22: half-configured``).
    package_states: tuple[str, ...] = ()
    #: Accounts created and owners set by name to match the target (``chown myapp:myapp (3 paths)``).
    owners: tuple[str, ...] = ()
    #: Files captured by their entry only that the VM lacks (no ``/etc/sudoers`` without sudo): their
    #: content is never copied, so a fault in their mode cannot show there.
    lacking: tuple[str, ...] = ()
    #: What the VM lacks (or has at another version) compared with the target, once checked.
    differences: Differences = field(default_factory=Differences)
    #: The host layer: what it added and where from, or why the run stayed on the template.
    layer: LayerUse = field(default_factory=LayerUse)

    @property
    def is_complete(self) -> bool:
        return self.error is None and self.unpack is not None and not self.unpack.failed


class Readiness(Protocol):
    """How the environment came up (the hypervisor's ``UpResult`` satisfies it)."""

    @property
    def boot_seconds(self) -> float: ...

    @property
    def is_warm(self) -> bool: ...


class Sandbox(Protocol):
    """One disposable environment in which a fault is reproduced and repairs are tried.

    Every method may raise a :class:`~orchestrator.errors.VmRepairError` subclass (``PipelineError``
    naming the stage, ``BootError``, ``TransportError``); the driver turns them into the run's
    ``error`` status and always calls :meth:`destroy`.
    """

    name: str
    #: The template the environment is a clone of (the default one, or its recipe for another release).
    template: str

    def start(self) -> None:
        """Begin booting (in the background): the target is captured meanwhile. Idempotent: a
        sandbox started early (before detection) is not started twice."""

    def wait_ready(self) -> Readiness:
        """Block until the environment answers; how long it took and whether it started warm."""
        ...

    def use_layer(self, plan: LayerPlan, target: Transport, facts: TargetFacts) -> LayerResult:
        """Build or reuse the host layer of ``plan`` (the target's packages over the template) and move
        onto a clone of it. Raises LayerError or BootError; the sandbox then still runs the template."""
        ...

    def use_template(self) -> None:
        """Back onto the plain template when the environment was started on a host layer the plan no
        longer wants (a guess from the last run); a no-op otherwise. Raises BootError."""

    def use_release(self, suite: str) -> str:
        """Move onto the default template's recipe built for Debian ``suite`` (built once); returns the
        template's name. Raises LayerError, ImageBuildError or BootError (the sandbox then still runs
        the previous template)."""
        ...

    def import_capture(self, capture: Capture, components: list[Component]) -> ImportReport:
        """Copy the captured files in and restart the affected units so they run the target's files."""
        ...

    def fill_disk_to(self, used_pct: float) -> None:
        """Reproduce the target's disk usage ratio."""

    def snapshot(self) -> None:
        """Remember the reproduced state; :meth:`revert` returns to it."""

    def revert(self) -> None:
        """Back to the reproduced state (after a failed attempt)."""

    def reboot(self) -> RebootResult:
        """Reboot for real (a boot-critical fix is proven only by a boot). Raises RebootError."""
        ...

    @property
    def transport(self) -> Transport: ...

    @property
    def agent(self) -> AgentApi: ...

    def destroy(self) -> None:
        """Tear down; idempotent."""


#: Makes the sandbox of one attempt round (the driver calls it once per round).
SandboxFactory = Callable[[Session], Sandbox]
