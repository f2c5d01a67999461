"""Boot an ephemeral troubleshooting VM (in the background, while the target is captured), import the
captured state into it, and reproduce the fault there.

The VM is always destroyed: by :meth:`TroubleshootingVm.destroy` in the pipeline's ``finally``, and,
should this process die, by the reaper (the VM is marked ephemeral with our pid).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import secrets

from orchestrator import systemd
from orchestrator.agent.api import UnpackResult
from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.boot.host import RebootResult
from orchestrator.capture.snapshot import Capture
from orchestrator.config.settings import Settings
from orchestrator.errors import LayerError, PipelineError, VmNotFoundError, VmRepairError
from orchestrator.facts.model import TargetFacts
from orchestrator.hypervisor.vm import UpResult, VmManager
from orchestrator.hypervisor.warm import WarmState, warm_vm_name
from orchestrator.imaging.builder import ImageBuilder
from orchestrator.imaging.releases import release_template
from orchestrator.imaging.store import BASE_DISK
from orchestrator.imaging.template import load_template
from orchestrator.layers.build import LayerBuilder, LayerResult
from orchestrator.layers.plan import LayerPlan
from orchestrator.layers.store import BuiltLayer, LayerStore
from orchestrator.model import Component
from orchestrator.sandbox import dpkg_states, mirror
from orchestrator.sandbox.protocol import ImportReport
from orchestrator.session.history import last_layer
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Snapshot taken after import + reproduction; every failed attempt reverts to it.
REPRODUCED_SNAPSHOT = "reproduced"
#: Outside every component path, so it never appears in a manifest diff or a fix package; the VM is
#: disposable, so a fixed name is no temp-file race.
FILLER = "/var/tmp/vmrepair-disk-filler"  # noqa: S108


def _boot(settings: Settings, name: str, template: str, layer: WarmState | None = None,
          hypervisor: str = "") -> UpResult:
    # A separate App (and libvirt connection) per thread keeps libvirt calls independent.
    app = App(settings)
    try:
        vms = app.vms_on(hypervisor) if hypervisor else app.vms
        return vms.up(name, template, ephemeral=True, boot_timeout=settings.vm.boot_timeout_s,
                      warm=True, layer=layer)
    finally:
        app.close()


class TroubleshootingVm:
    """The libvirt/QEMU :class:`~orchestrator.sandbox.protocol.Sandbox`.

    Raises (from its methods): PipelineError naming the stage; BootError when the VM cannot boot."""

    def __init__(self, app: App, session: Session) -> None:
        self.app = app
        self.session = session
        self.name = f"trb-{secrets.token_hex(3)}"
        #: What the VM is a clone of: the default template, or that recipe built for the target's
        #: release (:meth:`use_release`); a host layer may sit on top (:meth:`use_layer`).
        self.template = app.settings.default_template
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox")
        self._boot: concurrent.futures.Future[UpResult] | None = None
        #: The agent's upload and server start once the VM answers (:meth:`_warm_agent`).
        self._warm: concurrent.futures.Future[None] | None = None
        self._transport: Transport | None = None
        self._agent: RemoteAgent | None = None
        #: The key of the host layer the VM is a clone of ("" on the plain template).
        self.layer_key = ""
        #: Booting on the last run's layer (:meth:`start`) and not yet ready: a failure falls back.
        self._guessed = False
        #: The configured hypervisor the VM runs on ("": this machine); chosen by :meth:`start`.
        self.hypervisor = ""

    @property
    def vms(self) -> VmManager:
        """The manager of the hypervisor this VM runs on."""
        return self.app.vms_on(self.hypervisor) if self.hypervisor else self.app.vms

    def start(self) -> None:
        if self._boot is not None:
            return  # started early, before detection
        self._place()
        # A run killed earlier (SIGKILL, power loss) left its VMs running and holding the warm names
        # and memory; they go before this one boots. Only VMs whose owning process is gone: a run
        # next to this one keeps its own.
        try:
            reaped = self.vms.reap(orphans_only=True)
        except VmRepairError as exc:   # a leftover we cannot remove is no reason not to repair
            self.session.event("sandbox", "reap_failed", error=exc.message)
        else:
            if reaped:
                self.session.event("sandbox", "reaped", vms=reaped)
        layer = self._last_layer()
        if layer is None:
            self._boot_as(warm_vm_name(self.template))
            return
        # The target's packages rarely change between runs: start on the layer the last run used
        # instead of on the template and moving once the plan is made (one restore instead of two).
        # The plan still decides: another one moves (:meth:`use_layer`), none goes back to the
        # template (:meth:`use_template`).
        self.layer_key, self._guessed = layer.key, True
        self.session.event("sandbox", "layer_guessed", key=layer.key[:16])
        self._boot_as(layer.manifest.vm_name, layer.warm)

    def _place(self) -> None:
        """With ``hypervisors:`` configured, the least loaded one holding the template base (issue 15).

        Raises:
            HypervisorError: none is reachable with a free slot (the message names each and why).
        """
        if not self.app.settings.hypervisors:
            return
        base = self.app.images.require(self.template).manifest.artifacts.get(BASE_DISK)
        needed = frozenset({base.sha256}) if base is not None else frozenset()
        self.hypervisor = self.app.place_vm(needed).site.name
        self.session.event("sandbox", "placed", hypervisor=self.hypervisor or "local")

    def _last_layer(self) -> BuiltLayer | None:
        """The cached layer of this template build the last finished run on the target used, if any."""
        settings = self.app.settings
        if not settings.layers.enabled:
            return None
        key = last_layer(settings.sessions_dir, self.session.target)
        if not key:
            return None
        try:
            image = self.app.images.require(self.template)
            layer = LayerStore(settings.image_store).get(key, image.manifest.recipe_hash)
        except VmRepairError:
            return None   # a hint only: a key that does not parse or a layer that cannot be read
        return layer if layer is not None and layer.manifest.template == self.template else None

    def _boot_as(self, warm_name: str, layer: WarmState | None = None) -> None:
        # The warm state restores only under its own VM name; when that name is taken (another run
        # is using it), a random name cold-boots instead.
        if warm_name not in {vm.name for vm in self.vms.list()}:
            self.name = warm_name
        else:
            self.name = f"trb-{secrets.token_hex(3)}"
        self.session.event("sandbox", "booting", vm=self.name, template=self.template,
                           layer=layer is not None)
        self._boot = self._pool.submit(_boot, self.app.settings, self.name, self.template, layer,
                                       self.hypervisor)
        self._warm = self._pool.submit(self._warm_agent, self._boot)

    def _warm_agent(self, boot: concurrent.futures.Future[UpResult]) -> None:
        """Upload the agent and start its server as soon as the VM answers (in the pool's thread, after
        the boot): the import did it first (0.7 s and 0.5 s under TCG). With the VM started while the
        target is still being detected or captured, this is off the repair's critical path. Best
        effort: a failure here is met again, and reported, by the import."""
        if boot.exception() is not None:
            return
        try:
            self.agent.disk_usage("/")
        except VmRepairError as exc:
            self.session.event("sandbox", "agent_warm_failed", vm=self.name, error=exc.message)

    def _warm_done(self) -> None:
        """Wait for :meth:`_warm_agent` (it never raises for the guest): nothing may use or drop the
        connections it opens while it runs."""
        warm = self._warm
        if warm is not None:
            with contextlib.suppress(concurrent.futures.CancelledError):
                warm.result()

    def wait_ready(self) -> UpResult:
        if self._boot is None:
            self.start()
        boot = self._boot
        if boot is None:  # start() always sets it; this keeps mypy and readers sure
            raise PipelineError("troubleshooting VM was never started", stage="sandbox")
        try:
            result = boot.result()
        except VmRepairError as exc:
            if not self._guessed:
                raise
            # The last run's layer was only a guess: its clone not booting must not cost the round.
            self.session.event("sandbox", "layer_guess_failed", key=self.layer_key[:16], error=exc.message)
            self._guessed, self.layer_key = False, ""
            self.destroy_vm()
            self._boot_as(warm_vm_name(self.template))
            return self.wait_ready()
        self._guessed = False
        self._warm_done()
        self.session.event("sandbox", "ready", vm=self.name, boot_seconds=round(result.boot_seconds, 2),
                           warm=result.is_warm, warm_fallback=result.warm_fallback)
        return result

    def use_layer(self, plan: LayerPlan, target: Transport, facts: TargetFacts) -> LayerResult:
        """Build (or reuse) the host layer of ``plan`` and move this sandbox onto a clone of it.

        The template VM keeps running until the layer is ready: when the layer cannot be built, the
        caller goes on with it (template fallback). When the layer's clone does not boot, the template
        boots again and the error is raised for the caller to record.

        Raises: LayerError, BootError, HypervisorError.
        """
        self.session.event("sandbox", "layer_needed", packages=len(plan.needed), key=plan.key[:16])
        result = LayerBuilder(self.app.settings, self.app.vms, self.app.local,
                              progress=lambda step: self.session.event("sandbox", "layer", step=step)
                              ).ensure(plan, target, facts)
        running = self.layer_key == plan.key
        self.session.event("sandbox", "layer_ready", key=plan.key[:16], built_now=result.is_built,
                           seconds=round(result.seconds, 1), already_running=running)
        if not running:
            self._move(self.template, result.layer.manifest.vm_name, result.layer.warm, plan.key)
        return result

    def use_template(self) -> None:
        """Back onto a clone of the plain template when the VM was started on a layer no longer
        planned (:meth:`start`); a no-op otherwise.

        Raises: BootError, HypervisorError (the template's clone did not boot: destroyed)."""
        if self.layer_key:
            self.session.event("sandbox", "layer_dropped", key=self.layer_key[:16])
            self._move(self.template, warm_vm_name(self.template), None)

    def use_release(self, suite: str) -> str:
        """Move onto a clone of the default template's recipe built for Debian ``suite`` (built and
        warmed once, then cached); returns that template's name.

        Raises: LayerError (building for other releases is off), ImageBuildError, BootError.
        """
        settings = self.app.settings
        template = release_template(load_template(settings.templates_dir, settings.default_template), suite)
        if self.app.images.get(template.name) is None and not settings.layers.build_releases:
            raise LayerError(f"no template for {suite} is built and layers.build_releases is off",
                             step="release", remedy=f"`vmrepair image build --suite {suite}`")
        self.session.event("sandbox", "release_template", template=template.name)
        ImageBuilder(settings, self.app.local).build(template)   # cached by recipe hash
        self.app.vms.prepare_warm(template.name)
        self._move(template.name, warm_vm_name(template.name), None)
        return template.name

    def _move(self, template: str, warm_name: str, layer: WarmState | None, key: str = "") -> None:
        """Replace the running VM by a clone of ``template`` (and ``layer``, whose key is ``key``); when
        that one does not boot, the previous template (without a layer) boots again and the error is
        raised."""
        previous = self.template
        self.destroy_vm()
        self.template, self.layer_key, self._guessed = template, key, False
        self._boot_as(warm_name, layer)
        try:
            self.wait_ready()
        except VmRepairError:
            self.destroy_vm()
            self.template, self.layer_key = previous, ""
            self._boot_as(warm_vm_name(previous))
            raise

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.vms.transport(self.name)
        return self._transport

    @property
    def agent(self) -> RemoteAgent:
        if self._agent is None:
            self._agent = RemoteAgent(self.transport, timeout=self.app.settings.repair.step_timeout_s)
        return self._agent

    def import_capture(self, capture: Capture, components: list[Component]) -> ImportReport:
        """Copy the captured files in; on failure the VM keeps the template plus what did import."""
        remote = f"{self.agent.remote_dir}/capture.tar"
        try:
            if capture.paths:
                self.agent.push(capture.tar, remote)
                result = self.agent.unpack(remote, list(capture.placeholders), list(capture.paths),
                                           manifest=capture.manifest)
            else:   # a capture of meta paths only (a system path's mode) has nothing to unpack
                result = UnpackResult(())
        except VmRepairError as exc:
            self.session.event("sandbox", "import_failed", error=exc.message)
            return ImportReport(None, exc.message)
        self.session.event("sandbox", "imported", written=len(result.written),
                           placeholders=len(result.placeholders), failed=[list(f) for f in result.failed])
        # The VM's own view of the captured roots once the target's files are in: one manifest for
        # both checks (what the target lacks; whose names differ).
        in_vm = self.agent.manifest(list(capture.paths), exclude=capture.excluded)
        removed = mirror.remove_absent(self.transport, self.agent, capture, in_vm, self.session)
        removed += mirror.packaged_absences(self.agent, capture, self.session)
        states = dpkg_states.mirror_states(self.agent, capture, components, self.session)
        owners = mirror.map_owners(self.transport, capture, in_vm, self.session)
        meta = mirror.meta_nodes(self.transport, self.agent, capture, self.session)
        owners += meta.done
        units = sorted({u for c in components for u in c.units})
        sockets = sorted({u for c in components for u in c.sockets} - set(units))
        # Units and their drop-ins may have changed: reload (only then: about 1 s under TCG), then
        # restart what the capture touched so the services run (or fail) with the target's
        # configuration. A failed restart is the fault being reproduced; a hung one means the VM cannot
        # be trusted, so it stops the stage.
        host = self.transport.host
        if any(systemd.is_unit_file(path) for path in (*result.written, *result.placeholders, *removed)):
            systemd.daemon_reload(self.transport, timeout=60).raise_for_timeout(host)
        mirrored = mirror.unit_states(self.transport, capture, [*units, *sockets], self.session)
        for unit in [*sockets, *units]:
            target = capture.units.get(unit, {})
            masked = target.get("UnitFileState") == "masked"
            # A unit the target has stopped (masked, disabled, or stopped by hand: inactive, not failed)
            # is stopped here too: restarting it would run the template's instance and hide the fault.
            # A masked unit cannot be (re)started anyway.
            if target.get("ActiveState") in {"inactive", "deactivating"} or (
                    masked and target.get("ActiveState") not in {"active", "reloading", "activating"}):
                systemd.unit_command(self.transport, "stop", unit).raise_for_timeout(host)
                mirrored.append(f"stop {unit}: the target does not run it")
                continue
            if masked or unit in sockets:   # sockets are never restarted, only stopped like the target
                continue
            systemd.restart(self.transport, unit, timeout=90, reset_timeout=30).raise_for_timeout(host)
        return ImportReport(result, None, unit_states=tuple(mirrored), removed=tuple(removed),
                            package_states=tuple(states),
                            owners=tuple(owners), lacking=meta.lacking)

    def fill_disk_to(self, used_pct: float) -> None:
        """Reproduce the target's disk usage ratio (the VM's disk has another size)."""
        usage = self.agent.disk_usage("/")
        if usage.used_pct >= used_pct:
            return
        total = usage.used_bytes + usage.avail_bytes
        need = int(total * used_pct / 100.0) - usage.used_bytes + 8 * 1024 * 1024
        need = min(need, usage.avail_bytes)
        self.transport.check(["fallocate", "-l", str(need), FILLER], timeout=120)
        self.session.event("sandbox", "disk_filled", filler_bytes=need, to_pct=used_pct)

    def reboot(self) -> RebootResult:
        """Reboot the VM for real (a boot-critical fix is only proven by a boot).

        Raises:
            RebootError: it did not come back (e.g. dropped to emergency mode); the attempt fails.
        """
        self._drop_connections()
        result = self.vms.reboot(self.name)
        self.session.event("sandbox", "rebooted", vm=self.name, **result.as_dict())
        return result

    def snapshot(self, name: str = REPRODUCED_SNAPSHOT) -> None:
        self.vms.snapshot(self.name, name)

    def revert(self, name: str = REPRODUCED_SNAPSHOT) -> None:
        self._drop_connections()
        self.vms.revert(self.name, name)

    def _drop_connections(self) -> None:
        # A revert resets the guest's TCP state: the next call must open a new SSH session.
        if self._transport is not None:
            with contextlib.suppress(VmRepairError):
                self._transport.close()
        self._transport = None
        self._agent = None

    def destroy(self) -> None:
        try:
            self.destroy_vm()
        finally:
            self._pool.shutdown(wait=True)

    def destroy_vm(self) -> None:
        """Remove the current VM (the sandbox may boot another one: :meth:`use_layer`)."""
        boot = self._boot
        if boot is not None and not boot.done():
            with contextlib.suppress(Exception):
                boot.result()
        with contextlib.suppress(Exception):
            self._warm_done()
        self._drop_connections()
        try:
            self.vms.destroy(self.name)
            self.session.event("sandbox", "destroyed", vm=self.name)
        except VmNotFoundError:
            pass  # up() already cleaned up after a failed boot
        except VmRepairError as exc:
            raise PipelineError(f"cannot destroy troubleshooting VM {self.name}: {exc.message}",
                                stage="cleanup", remedy="run `vmrepair vm reap`") from exc

