"""Build (or reuse) the host layer a plan asks for.

    lock → cached? → preflight (space) → fetch .debs (target's apt cache, then the mirror) →
    boot a build VM from the template → install offline → verify versions → freeze (disk + memory) →
    publish

The guest never has network: the .debs are copied in and installed from a local repository
(:mod:`.install`). Frozen like a warm state, the layer restores as fast as the template.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.config.settings import Settings
from orchestrator.errors import LayerError, VmRepairError
from orchestrator.facts.model import TargetFacts
from orchestrator.hypervisor.warm import WarmState
from orchestrator.imaging.mirror import host_mirror
from orchestrator.layers import debs
from orchestrator.layers.install import install
from orchestrator.layers.plan import LayerPlan
from orchestrator.layers.store import BuiltLayer, LayerManifest, LayerStore
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Beyond the .debs (unpacked they take about three times their size) and the memory state.
SPACE_HEADROOM_BYTES = 512 * 1024**2
STEPS = ("fetch", "boot", "install", "freeze", "publish")


@dataclass(frozen=True)
class LayerResult:
    layer: BuiltLayer
    #: Built by this call (False: a cached layer, perhaps built by another run while we waited).
    is_built: bool
    seconds: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        m = self.layer.manifest
        return {"key": m.key, "vm_name": m.vm_name, "built_now": self.is_built,
                "seconds": round(self.seconds, 1), "build_seconds": m.build_seconds,
                "packages": m.packages, "notes": list(self.notes)}


def default_mirror(settings: Settings, facts: TargetFacts) -> str:
    """The mirror the target's packages are fetched from when its apt cache lacks them.

    Raises:
        LayerError: none is configured and none is known for the target's release.
    """
    if settings.layers.mirror or settings.mirror:
        return str(settings.layers.mirror or settings.mirror)
    try:
        return host_mirror(facts.os.codename)
    except VmRepairError as exc:
        raise LayerError(exc.message, step="fetch", remedy="set layers.mirror in the config") from exc


def layer_vm_name(key: str) -> str:
    """The name clones of the layer must have (its memory state was saved under it)."""
    return f"lyr-{key[:16]}"


class Freezer(Protocol):
    """What the builder needs of the hypervisor (:class:`~orchestrator.hypervisor.vm.VmManager`)."""

    def freeze(self, name: str, template: str, into: Path,
               prepare: Callable[[Transport], None] | None = None, *, warm: bool = False) -> WarmState: ...


#: Obtains the .debs (:func:`orchestrator.layers.debs.fetch`; tests pass their own).
Fetch = Callable[..., debs.Fetched]


class LayerBuilder:
    """Raises (from :meth:`ensure`): LayerError naming the step; BootError when the build VM does not
    boot. Nothing half-built is ever published."""

    def __init__(self, settings: Settings, vms: Freezer, local: Transport,
                 progress: Callable[[str], None] | None = None, *, fetch: Fetch = debs.fetch,
                 free_bytes: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free) -> None:
        self.settings = settings
        self.vms = vms
        self.local = local
        self.store = LayerStore(settings.image_store)
        self.progress = progress or (lambda step: log.info("layer: %s", step))
        self.fetch = fetch
        self.free_bytes = free_bytes

    def ensure(self, plan: LayerPlan, target: Transport, facts: TargetFacts) -> LayerResult:
        began = time.monotonic()
        key = plan.key
        with self.store.lock(key, timeout_s=self.settings.layers.build_timeout_s):
            cached = self.store.get(key, plan.recipe_hash)
            if cached is not None:
                self.store.touch(cached)
                return LayerResult(cached, False, time.monotonic() - began)
            return self._build(plan, target, facts, began)

    def _build(self, plan: LayerPlan, target: Transport, facts: TargetFacts, began: float) -> LayerResult:
        self._need_space(SPACE_HEADROOM_BYTES, "before fetching")
        work = self.store.work_dir(plan.key)
        timings: dict[str, float] = {}
        try:
            self.progress(f"fetching {len(plan.needed)} packages while the build VM boots")
            step = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="layer-fetch") as pool:
                # The fetch (seconds to a minute) and the build VM's boot (about 20 s) overlap.
                fetching = pool.submit(self._fetch, plan, target, facts, work / "debs", timings)

                def prepare(vm: Transport) -> None:
                    fetched = fetching.result()
                    size = sum(d.path.stat().st_size for d in fetched.debs)
                    self._need_space(3 * size + SPACE_HEADROOM_BYTES, "for the layer's disk")
                    self.progress(f"installing {len(fetched.debs)} packages")
                    install(vm, self.local, fetched.debs, timeout=self.settings.layers.build_timeout_s,
                            timings=timings)

                self.vms.freeze(layer_vm_name(plan.key), plan.template, work, prepare)
                fetched = fetching.result()
            # From the boot to the saved state; the fetch ran during the boot.
            timings["vm"] = round(time.monotonic() - step, 2)
            shutil.rmtree(work / "debs")
            manifest = LayerManifest(
                key=plan.key, template=plan.template, recipe_hash=plan.recipe_hash,
                vm_name=layer_vm_name(plan.key),
                packages={d.package.spec: d.source for d in fetched.debs},
                deb_sha256={d.package.spec: d.sha256 for d in fetched.debs},
                built_at=now_timestamp(), build_seconds=round(time.monotonic() - began, 1),
                step_seconds=timings)
            layer = self.store.publish(work, manifest)
        except BaseException as exc:
            self._discard(work)
            if isinstance(exc, OSError):
                raise LayerError(f"layer build: {exc}", step="build",
                                 remedy="free space (`vmrepair image layers --prune`)") from exc
            raise
        self.store.touch(layer)
        return LayerResult(layer, True, time.monotonic() - began, fetched.notes)

    def _fetch(self, plan: LayerPlan, target: Transport, facts: TargetFacts, dest: Path,
               timings: dict[str, float]) -> debs.Fetched:
        began = time.monotonic()
        arch = next((p.arch for p in plan.needed if p.arch != "all"), facts.arch)
        fetched = self.fetch(target, plan.needed, dest, local=self.local, settings=self.settings.layers,
                             default_mirror=self._mirror(facts), suite=facts.os.codename, arch=arch,
                             cache_dir=debs.fetch_cache_dir(self.settings.image_store))
        timings["fetch"] = round(time.monotonic() - began, 2)
        return fetched

    def _mirror(self, facts: TargetFacts) -> str:
        return default_mirror(self.settings, facts)

    def _need_space(self, need: int, when: str) -> None:
        root = self.settings.image_store
        root.mkdir(parents=True, exist_ok=True)
        free = self.free_bytes(root)
        if free < need:
            raise LayerError(
                f"the image store {root} is full: {free // 2**20} MiB free, {need // 2**20} MiB needed "
                f"{when}", step="preflight",
                remedy="`vmrepair image layers --prune` removes unused layers; or free space")

    def _discard(self, work: Path) -> None:
        try:
            self.store.remove(work)
        except (VmRepairError, OSError):
            log.exception("cannot remove the partial layer build %s", work)
