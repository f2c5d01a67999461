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
from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.boot.host import RebootResult
from orchestrator.capture.snapshot import Capture
from orchestrator.config.settings import Settings
from orchestrator.errors import PipelineError, VmNotFoundError, VmRepairError
from orchestrator.hypervisor.vm import UpResult
from orchestrator.hypervisor.warm import warm_vm_name
from orchestrator.model import Component
from orchestrator.sandbox import mirror
from orchestrator.sandbox.protocol import ImportReport
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Snapshot taken after import + reproduction; every failed attempt reverts to it.
REPRODUCED_SNAPSHOT = "reproduced"
#: Outside every component path, so it never appears in a manifest diff or a fix package; the VM is
#: disposable, so a fixed name is no temp-file race.
FILLER = "/var/tmp/vmrepair-disk-filler"  # noqa: S108


def _boot(settings: Settings, name: str, timeout: float) -> UpResult:
    # A separate App (and libvirt connection) per thread keeps libvirt calls independent.
    app = App(settings)
    try:
        return app.vms.up(name, ephemeral=True, boot_timeout=timeout, warm=True)
    finally:
        app.close()


class TroubleshootingVm:
    """The libvirt/QEMU :class:`~orchestrator.sandbox.protocol.Sandbox`.

    Raises (from its methods): PipelineError naming the stage; BootError when the VM cannot boot."""

    def __init__(self, app: App, session: Session) -> None:
        self.app = app
        self.session = session
        self.name = f"trb-{secrets.token_hex(3)}"
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox")
        self._boot: concurrent.futures.Future[UpResult] | None = None
        self._transport: Transport | None = None
        self._agent: RemoteAgent | None = None

    def start(self) -> None:
        if self._boot is not None:
            return  # started early, before detection
        # The warm state restores only under its own VM name; when that name is taken (another run
        # is using it), the random name cold-boots instead.
        warm_name = warm_vm_name(self.app.settings.default_template)
        if warm_name not in {vm.name for vm in self.app.vms.list()}:
            self.name = warm_name
        self.session.event("sandbox", "booting", vm=self.name)
        self._boot = self._pool.submit(_boot, self.app.settings, self.name,
                                       self.app.settings.vm.boot_timeout_s)

    def wait_ready(self) -> UpResult:
        if self._boot is None:
            self.start()
        boot = self._boot
        if boot is None:  # start() always sets it; this keeps mypy and readers sure
            raise PipelineError("troubleshooting VM was never started", stage="sandbox")
        result = boot.result()
        self.session.event("sandbox", "ready", vm=self.name, boot_seconds=round(result.boot_seconds, 2),
                           warm=result.is_warm, warm_fallback=result.warm_fallback)
        return result

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.app.vms.transport(self.name)
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
            self.agent.push(capture.tar, remote)
            result = self.agent.unpack(remote, list(capture.placeholders), list(capture.paths),
                                       manifest=capture.manifest)
        except VmRepairError as exc:
            self.session.event("sandbox", "import_failed", error=exc.message)
            return ImportReport(None, exc.message)
        self.session.event("sandbox", "imported", written=len(result.written),
                           placeholders=len(result.placeholders), failed=[list(f) for f in result.failed])
        # The VM's own view of the captured roots once the target's files are in: one manifest for
        # both checks (what the target lacks; whose names differ).
        in_vm = self.agent.manifest(list(capture.paths))
        removed = mirror.remove_absent(self.transport, self.agent, capture, in_vm, self.session)
        owners = mirror.map_owners(self.transport, capture, in_vm, self.session)
        units = sorted({u for c in components for u in c.units})
        # Units and their drop-ins may have changed: reload (only then: about 1 s under TCG), then
        # restart what the capture touched so the services run (or fail) with the target's
        # configuration. A failed restart is the fault being reproduced; a hung one means the VM cannot
        # be trusted, so it stops the stage.
        host = self.transport.host
        if any(systemd.is_unit_file(path) for path in (*result.written, *result.placeholders, *removed)):
            systemd.daemon_reload(self.transport, timeout=60).raise_for_timeout(host)
        mirrored = mirror.unit_states(self.transport, capture, units, self.session)
        for unit in units:
            target = capture.units.get(unit, {})
            if target.get("UnitFileState") == "masked":
                # A masked unit cannot be (re)started; one the target does not run is stopped here
                # too (masking alone leaves the template's instance running).
                if target.get("ActiveState") not in {"active", "reloading", "activating"}:
                    systemd.unit_command(self.transport, "stop", unit).raise_for_timeout(host)
                    mirrored.append(f"stop {unit}: the target does not run it")
                continue
            systemd.restart(self.transport, unit, timeout=90, reset_timeout=30).raise_for_timeout(host)
        return ImportReport(result, None, unit_states=tuple(mirrored), removed=tuple(removed),
                            owners=tuple(owners))

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
        result = self.app.vms.reboot(self.name)
        self.session.event("sandbox", "rebooted", vm=self.name, **result.as_dict())
        return result

    def snapshot(self, name: str = REPRODUCED_SNAPSHOT) -> None:
        self.app.vms.snapshot(self.name, name)

    def revert(self, name: str = REPRODUCED_SNAPSHOT) -> None:
        self._drop_connections()
        self.app.vms.revert(self.name, name)

    def _drop_connections(self) -> None:
        # A revert resets the guest's TCP state: the next call must open a new SSH session.
        if self._transport is not None:
            with contextlib.suppress(VmRepairError):
                self._transport.close()
        self._transport = None
        self._agent = None

    def destroy(self) -> None:
        self._drop_connections()
        boot = self._boot
        if boot is not None and not boot.done():
            with contextlib.suppress(Exception):
                boot.result()
        self._pool.shutdown(wait=True)
        try:
            self.app.vms.destroy(self.name)
            self.session.event("sandbox", "destroyed", vm=self.name)
        except VmNotFoundError:
            pass  # up() already cleaned up after a failed boot
        except VmRepairError as exc:
            raise PipelineError(f"cannot destroy troubleshooting VM {self.name}: {exc.message}",
                                stage="cleanup", remedy="run `vmrepair vm reap`") from exc

