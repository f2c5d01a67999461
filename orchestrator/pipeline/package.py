"""Stage package: turn the validated sandbox state into a fix package.

The package holds only what actually changed in the sandbox (plus replayed data operations), limited to
the allow-listed roots. A change it cannot carry safely (a symlink, a path outside the roots) is a
:class:`~orchestrator.pipeline.values.Refused`, not an error: nothing is applied and the reason is the
result.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator import dpkg
from orchestrator.agent.api import Manifest
from orchestrator.boot.critical import analyse
from orchestrator.capture.content import captured_reader
from orchestrator.capture.snapshot import UNIT_STATE_KINDS, Capture, unit_link_paths
from orchestrator.detect.writable import load_accounts
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import DebInstallOp, compute_package
from orchestrator.fsutil import ensure_private_dir
from orchestrator.layers.exact import read_verified
from orchestrator.model import Component, Issue
from orchestrator.pipeline.attempts import debs_dir
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.values import Built, Refused, Winner, Workbench
from orchestrator.session.evidence import Evidence, Stage


def _within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def authoritative_after(
    before: Manifest, after: Manifest, components: tuple[Component, ...] | list[Component],
    exact: tuple[str, ...] = (),
) -> tuple[Manifest, list[str]]:
    """The sandbox's state where it is authoritative (config and unit files, and the ``exact`` paths
    themselves: unit links and the directories captured by their own entry), the captured state
    elsewhere.

    Data and log files change in the sandbox on their own (its services log, and record the requests the
    validation makes): copying them would write the sandbox's activity into the target's data. Data
    changes reach the target only as replayed operations (rotate_log, jsonl_repair); a data directory's
    own existence, mode and owner are not activity, so an ``exact`` path counts, never what is below it.
    Returns the manifest to diff against and the sandbox changes left out (recorded in the session).
    """
    roots = [p for c in components for p in (*c.config_paths, *c.unit_paths)]
    exact_set = set(exact)

    def ours(path: str) -> bool:
        return path in exact_set or _within(path, roots)

    before_map, after_map = before.by_path(), after.by_path()
    merged = [e for p, e in after_map.items() if ours(p)]
    merged += [e for p, e in before_map.items() if not ours(p)]
    ignored = sorted(p for p in set(before_map) | set(after_map)
                     if not ours(p) and before_map.get(p) != after_map.get(p))
    missing = tuple(p for p in after.missing if ours(p))
    missing += tuple(p for p in before.missing if not ours(p))
    return Manifest(tuple(merged), missing), ignored


def exact_paths(capture: Capture, components: Sequence[Component]) -> tuple[str, ...]:
    """The paths whose own entry the sandbox decides (see :func:`authoritative_after`): the capture's
    meta paths, the units' mask and wants links, and the components' data and writable roots. A
    repair that recreates a missing data directory (or fixes its mode or owner) is a node change the
    target needs; what the sandbox's own service wrote below it stays out."""
    links = unit_link_paths(list(components), set(UNIT_STATE_KINDS))
    roots = [p for c in components for p in (*c.data_paths, *c.writable_paths, *c.log_dirs)]
    return (*capture.meta_paths, *dict.fromkeys(p for p in (*links, *roots) if p in capture.paths))


def build(ctx: RunContext, work: Workbench, issue: Issue, winner: Winner) -> Built | Refused:
    """Raises: AgentError/TransportError (file contents could not be read from the sandbox), StateError."""
    app, session, capture = ctx.app, ctx.session, work.capture
    with session.stage(Stage.PACKAGE) as st:
        exact = exact_paths(capture, work.components)
        after, ignored = authoritative_after(capture.manifest, winner.after, work.components, exact)
        debs, vm = debs_dir(ctx), work.sandbox.transport

        def deb_content(op: DebInstallOp) -> bytes | None:
            return read_verified(debs, op.package, op.version, op.architecture, op.sha256)

        def package_files(op: DebInstallOp) -> dpkg.PackagedFiles:
            return dpkg.packaged_files(vm, op.package, op.architecture)

        # Owners the capture cannot name (a directory the target lost) by the target's own accounts.
        accounts = load_accounts(ctx.agent)
        try:
            package = compute_package(
                capture.manifest, after, work.sandbox.agent, list(winner.replay_ops),
                placeholders=capture.placeholder_paths, allowed_roots=app.settings.repair.allowed_roots,
                diagnosis=winner.diagnosis.as_dict(), validation=winner.validation.as_dict(),
                issue=issue.as_dict(),
                reboot_required=winner.reboot_required or winner.rebooted,
                # The target's originals, for the diffs the report shows (what was applied).
                before_content=captured_reader(capture.tar),
                deb_content=deb_content, package_files=package_files,
                target_users={name: ids[0] for name, ids in accounts.users.items()},
                target_groups=dict(accounts.groups),
                # The VM's own files there (/etc/shadow): their content is not the target's.
                meta_only=capture.meta_paths,
            )
        except FixPackageError as exc:
            st.status, st.detail = "failed", exc.message
            return Refused(exc.message)
        reboot = analyse(package.paths, validated_with_reboot=winner.rebooted,
                         strategy_requires=winner.reboot_required)
        if reboot.required and not winner.rebooted:
            # Never ship a boot-critical change that was not proven by a boot in the sandbox.
            why = f"{'; '.join(reboot.reasons)}, but its validation did not include a reboot"
            st.status, st.detail = "failed", why
            return Refused(why)
        pkg_dir = ensure_private_dir(app.settings.state_dir / "packages" / package.id)
        package.save(pkg_dir)
        session.write_json(Evidence.FIX_PACKAGE.file(issue.component), {
            **package.as_dict(), "directory": str(pkg_dir), "strategy": winner.strategy,
            "ignored_vm_changes": ignored, "reboot": reboot.as_dict()})
        st.detail = f"{len(package.operations)} operation(s) from strategy {winner.strategy}"
    return Built(package, pkg_dir, reboot)
