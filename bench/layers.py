"""Benchmark host layers: the first build for a new target, the cached reuse, and how fast a clone of a
layer is ready compared with a clone of the plain template.

A script, not a test: it prints medians side by side with ratios in one run. Run as root after
`make setup` (both templates built): `.venv/bin/python bench/layers.py [--restores N] [--keep]`.
The target is a patient booted from the `debian-12-services` template (apache2 on 8080, mariadb),
whose packages the default template lacks. Targets of issue 10: a cached layer adds at most 10% to
the troubleshooting VM's readiness; the first build takes at most 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.facts import read_facts
from orchestrator.hypervisor.warm import load_warm_state, warm_vm_name
from orchestrator.layers.build import LayerBuilder, LayerResult
from orchestrator.layers.plan import plan_layer, template_packages
from orchestrator.layers.store import LayerStore
from orchestrator.model import Component

SERVICES_TEMPLATE = "debian-12-services"
COMPONENTS = (Component("apache2", units=("apache2.service",)),
              Component("mariadb", units=("mariadb.service",)))


def readiness(app: App, up: Callable[[str], float], name: str, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        try:
            samples.append(up(name))
        finally:
            app.vms.destroy(name)
    return samples


def plan_and_build(app: App, patient: str, *, keep: bool) -> tuple[LayerResult, LayerResult]:
    """Plan the patient's layer as a run would, build it (first run) and ask again (second run)."""
    template = app.settings.default_template
    image = app.images.require(template)
    probe = f"bench-probe-{int(time.time()) % 100000}"
    with app.vms.transport(patient) as target:
        target.check(["systemctl", "is-system-running", "--wait"], timeout=300)
        facts = read_facts(target, RemoteAgent(target), COMPONENTS)
        app.vms.up(probe, warm=False)
        try:
            with app.vms.transport(probe) as vm:
                in_template = template_packages(vm)
                arch = vm.check(["dpkg", "--print-architecture"]).stdout_text.strip()
        finally:
            app.vms.destroy(probe)
        plan = plan_layer(target=target, facts=facts, components=COMPONENTS, template=template,
                          recipe_hash=image.manifest.recipe_hash, template_arch=arch,
                          template_os=("debian", image.manifest.suite), in_template=in_template,
                          settings=app.settings.layers)
        if not plan.is_needed:
            raise SystemExit(f"no layer needed? {plan.as_dict()}")
        store = LayerStore(app.settings.image_store)
        existing = store.get(plan.key)
        if existing is not None and not keep:
            store.remove(existing.directory)
        builder = LayerBuilder(app.settings, app.vms, app.local)
        return builder.ensure(plan, target, facts), builder.ensure(plan, target, facts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restores", type=int, default=7, help="restores of each, interleaved")
    parser.add_argument("--keep", action="store_true", help="reuse a cached layer (no first build)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)   # SSH polls during boots are expected to fail
    app = App.from_env()
    template = app.settings.default_template
    image = app.images.require(template)
    if load_warm_state(image.directory, image.manifest.recipe_hash) is None:
        app.vms.prepare_warm(template)
    patient = f"bench-layer-{int(time.time()) % 100000}"
    app.vms.up(patient, SERVICES_TEMPLATE)
    try:
        first, second = plan_and_build(app, patient, keep=args.keep)
        layer = first.layer
        print(f"host layer for {patient} ({SERVICES_TEMPLATE}) over {template}: "
              f"{len(layer.manifest.packages)} packages, {layer.disk_bytes // 2**20} MiB on disk")
        sources: dict[str, int] = {}
        for source in layer.manifest.packages.values():
            sources[source] = sources.get(source, 0) + 1
        print(f"  .deb sources: {sources}; build steps: {layer.manifest.step_seconds}")
        label = "first run (layer built)" if first.is_built else "first run (layer was cached: --keep)"
        print(f"  {label:<44} {first.seconds:9.2f} s   target <= 180 s")
        print(f"  {'second run (cached layer)':<44} {second.seconds:9.2f} s   "
              f"x{first.seconds / max(second.seconds, 1e-3):.0f} faster")

        def up_template(name: str) -> float:
            return app.vms.up(name, ephemeral=True, warm=True).boot_seconds

        def up_layer(name: str) -> float:
            result = app.vms.up(name, ephemeral=True, warm=True, layer=layer.warm)
            if not result.is_warm:
                raise SystemExit(f"layer clone was not restored warm: {result.warm_fallback}")
            return result.boot_seconds

        # Interleaved, one of each per round: drift of the machine (page cache, a neighbour's load)
        # then hits both series alike instead of whichever ran second.
        plain: list[float] = []
        layered: list[float] = []
        for _ in range(args.restores):
            plain += readiness(app, up_template, warm_vm_name(template), 1)
            layered += readiness(app, up_layer, layer.manifest.vm_name, 1)
        warm = load_warm_state(image.directory, image.manifest.recipe_hash)
        if warm is not None:
            print(f"  saved memory states: template {warm.state.stat().st_size / 2**20:.0f} MiB, "
                  f"layer {layer.warm.state.stat().st_size / 2**20:.0f} MiB")
        ratio = statistics.median(layered) / statistics.median(plain)
        print(f"  {'ready: clone of the template (warm)':<44} {statistics.median(plain):9.2f} s  "
              f"(n={len(plain)}: {', '.join(f'{s:.2f}' for s in plain)})")
        print(f"  {'ready: clone of the cached layer (warm)':<44} {statistics.median(layered):9.2f} s  "
              f"(n={len(layered)}: {', '.join(f'{s:.2f}' for s in layered)})  "
              f"x{ratio:.2f} of the template's   target <= x1.10")
    finally:
        app.vms.destroy(patient)
        app.close()


if __name__ == "__main__":
    main()
