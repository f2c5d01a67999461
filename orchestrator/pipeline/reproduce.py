"""Stages capture → sandbox → reproduce: read the affected components off the target, import them into
the troubleshooting environment, and check that the fault shows there too."""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import replace

from orchestrator.capture.snapshot import Capture, capture_components, capture_paths
from orchestrator.errors import VmRepairError
from orchestrator.facts import application_roots, read_facts, read_unpackaged
from orchestrator.facts.compare import environment_differences
from orchestrator.facts.model import TargetFacts
from orchestrator.imaging.releases import SUITE
from orchestrator.layers.plan import plan_layer, template_facts
from orchestrator.layers.use import LayerUse
from orchestrator.model import Component, Issue, IssueKind
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.triage import DISK_KINDS
from orchestrator.pipeline.values import Reproduction
from orchestrator.sandbox.protocol import ImportReport, Sandbox
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.validate.probes import ProbeRunner


def capture(ctx: RunContext, issue: Issue, related: tuple[Issue, ...],
            components: list[Component]) -> Capture:
    """Raises: TransportError, AgentError (the target could not be read)."""
    with ctx.session.stage(Stage.CAPTURE) as st, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="facts") as pool:
        # The component's own code (what its units run that no package owns) travels with the capture;
        # the other facts are a handful of read-only questions, asked while the files are packed.
        unpackaged = read_unpackaged(ctx.transport, components)
        kinds = {issue.kind, *(i.kind for i in related)}
        extra = application_roots(unpackaged[0], capture_paths(components, kinds))
        facts = pool.submit(read_facts, ctx.transport, ctx.agent, components, unpackaged=unpackaged)
        captured = capture_components(ctx.session, ctx.transport, ctx.agent, components, kinds,
                                      max_file_bytes=ctx.app.settings.repair.max_capture_file_bytes,
                                      facts=facts, extra_paths=extra,
                                      subjects=[issue.subject, *(i.subject for i in related)],
                                      ignored=ctx.watch.ignore_paths, verify=ctx.probes.verify_packages)
        st.detail = (f"{len(captured.manifest.entries)} entries, {len(captured.placeholders)} placeholders;"
                     f" target: {captured.facts.summary() if captured.facts else 'unknown'}")
    return captured


def prepare(ctx: RunContext, sandbox: Sandbox, captured: Capture, issue: Issue,
            components: list[Component]) -> ImportReport:
    """Wait for the sandbox (booting since the round began) and import the capture into it.

    Raises: BootError, PipelineError, TransportError.
    """
    with ctx.session.stage(Stage.SANDBOX) as st:
        up = sandbox.wait_ready()
        first = sandbox.name
        layer = host_layer(ctx, sandbox, captured, components)
        if sandbox.name != first:   # moved onto the layer (or off a guessed one)
            up = sandbox.wait_ready()
        imported = replace(sandbox.import_capture(captured, components), layer=layer)
        if captured.facts is not None:
            # Checked once the VM runs the target's configuration: what it lacks, a probe failing
            # there could be failing for (reproduce refuses to count such a failure).
            imported = replace(imported, differences=environment_differences(
                captured.facts, captured.units, sandbox.transport, components,
                target_lacks=captured.package_missing))
        if issue.kind in DISK_KINDS and captured.disk is not None:
            sandbox.fill_disk_to(captured.disk.used_pct if issue.kind is IssueKind.DISK_FULL
                                 else ctx.watch.thresholds.disk_critical_pct)
        state = "complete" if imported.is_complete else f"partial: {imported.error or 'see evidence'}"
        how = "restored warm" if up.is_warm else "booted"
        st.detail = f"{sandbox.name} {how} in {up.boot_seconds:.1f} s on {layer.describe()}; import {state}"
    return imported


def _release(ctx: RunContext, sandbox: Sandbox, facts: TargetFacts) -> str:
    """A Debian target of another release than the template's gets that release's template (built
    once); returns what was done, or why not (the plan then refuses the layer and says so)."""
    release = facts.os.codename
    image = ctx.app.images.require(sandbox.template)
    if facts.os.id != "debian" or not release or release == image.manifest.suite or not SUITE.match(release):
        return ""
    try:
        return f"the target runs {facts.os}: the VM runs template {sandbox.use_release(release)}"
    except VmRepairError as exc:
        ctx.session.event(Stage.SANDBOX, "release_failed", release=release, error=exc.message)
        return f"no template for {release}: {exc.message}"


def host_layer(ctx: RunContext, sandbox: Sandbox, captured: Capture,
               components: list[Component]) -> LayerUse:
    """Give the sandbox the target's packages (a host layer) when the template lacks some that matter.

    Never fatal: a layer that cannot be planned, built or booted leaves the sandbox on the template,
    with the reason recorded (reproduce then refuses a failure the missing packages could explain).
    """
    use = _host_layer(ctx, sandbox, captured, components)
    if use.result is None:
        try:
            sandbox.use_template()   # started on the last run's layer, which this plan does not want
        except VmRepairError as exc:
            ctx.session.event(Stage.SANDBOX, "layer_failed", error=exc.message)
            return replace(use, fallback=f"{use.fallback or 'no layer'}; back on the template: {exc.message}")
    else:
        ctx.session.set_meta(layer=use.key)   # the next run's VM starts on it
    return use


def _host_layer(ctx: RunContext, sandbox: Sandbox, captured: Capture,
                components: list[Component]) -> LayerUse:
    settings = ctx.app.settings
    facts = captured.facts
    if facts is None or not settings.layers.enabled:
        why = "layers are disabled" if facts is not None else "the target's facts are unknown"
        return LayerUse(fallback=why)
    plan = None
    try:
        moved = _release(ctx, sandbox, facts)
        image = ctx.app.images.require(sandbox.template)
        arch, in_template = template_facts(image.directory, image.manifest.recipe_hash, sandbox.transport)
        # Every watched component, not only the affected ones: one layer per host configuration, reused
        # by every fault on that host, and related services (a web server and its database) both run.
        watched = (*components, *(c for c in ctx.watch.components if c not in components))
        plan = plan_layer(target=ctx.transport, facts=facts, components=watched,
                          template=sandbox.template, recipe_hash=image.manifest.recipe_hash,
                          template_arch=arch, template_os=("debian", image.manifest.suite),
                          in_template=in_template, settings=settings.layers)
        if moved:
            plan = replace(plan, notes=(moved, *plan.notes))
        if plan.refused:
            ctx.session.event(Stage.SANDBOX, "layer_refused", reason=plan.refused)
            return LayerUse(plan, fallback="; ".join(filter(None, (plan.refused, moved))),
                            template=sandbox.template)
        if not plan.needed:
            return LayerUse(plan, template=sandbox.template)
        return LayerUse(plan, sandbox.use_layer(plan, ctx.transport, facts), template=sandbox.template)
    except VmRepairError as exc:
        ctx.session.event(Stage.SANDBOX, "layer_failed", error=exc.message)
        return LayerUse(plan, fallback=f"layer failed: {exc.message}", template=sandbox.template)


def _lacking(imported: ImportReport) -> str:
    """Why a probe of a meta path's file passes in the VM: the VM has no such file at all."""
    if not imported.lacking:
        return ""
    return (f"the troubleshooting VM has no {', '.join(imported.lacking)} (only a file's mode and owner "
            f"are mirrored into the VM, never its content), so the fault cannot show there")


def reproduce(ctx: RunContext, probes: ProbeRunner, issue: Issue, imported: ImportReport) -> Reproduction:
    """Run the issue's own probe in the sandbox. A probe that cannot run there proves nothing, so it
    counts as not reproduced.

    Raises: TransportError (the sandbox stopped answering).
    """
    with ctx.session.stage(Stage.REPRODUCE) as st:
        # One concurrent run of every probe: the issue's own result, and what passes with the fault
        # reproduced (what a repair must not break).
        began = time.monotonic()
        results = probes.run_all()
        round_s = time.monotonic() - began
        observed = next((r for r in results if r.probe == issue.probe), None) or probes.run_probe(issue.probe)
        passing = frozenset(r.probe for r in results if r.ok and not r.is_unavailable)
        differences = imported.differences
        ctx.session.write_json(Evidence.REPRODUCE.file(issue.component), {
            "probe": issue.probe, "ok": observed.ok, "summary": observed.summary,
            "evidence": observed.evidence, "import_complete": imported.is_complete,
            "unit_states": list(imported.unit_states), "absent_removed": list(imported.removed[:200]),
            "package_states": list(imported.package_states),
            "owners_mapped": list(imported.owners), "vm_lacks": list(imported.lacking),
            "layer": imported.layer.as_dict(),
            "environment": differences.as_dict()})
        if not differences.is_faithful:
            # Whatever the probe says, it says it about another environment than the target's.
            why = "environment differs: " + "; ".join(differences.missing)
            st.detail = f"not reproduced: {why}"
            return Reproduction(False, observed.summary, passing, reason=why)
        if observed.is_unavailable:
            st.detail = f"probe {issue.probe} cannot run in the VM: not reproduced"
            why = f"{issue.probe} cannot run in the troubleshooting VM: {observed.summary}"
            return Reproduction(False, observed.summary, passing, reason=why)
        if observed.ok:
            st.detail = f"probe {issue.probe} passes in the VM: not reproduced"
            return Reproduction(False, observed.summary, passing, reason=_lacking(imported))
        st.detail = f"reproduced: {observed.summary}"
    return Reproduction(True, observed.summary, passing, round_s=round_s)
