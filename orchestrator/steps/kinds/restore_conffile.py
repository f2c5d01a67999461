"""``restore_conffile``: put back the pristine copy of a packaged config file, taken from the package's
``.deb`` in the VM's apt cache — works without a baseline, for files the package ships::

    - restore_conffile: {package: nginx-common, paths: ['{offender}']}

The agent reads each file straight out of the archive (``deb_file``: the data.tar streamed up to that
member, nothing unpacked) and writes it in place. An agent that cannot (an older one; a compression the
VM's Python cannot stream, such as zstd) falls back to ``dpkg-deb -x DEB TMPDIR`` (argv, no shell, no
pipe) into a private temporary directory, read back and then removed: four guest processes more (about
0.8 s of every such attempt under TCG).
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Annotated, ClassVar, Protocol, runtime_checkable

from pydantic import Field

from orchestrator.errors import AgentFailedError, TransportError
from orchestrator.playbooks.fields import PACKAGE_PATTERN, PathTemplate, Strict
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import normalize, within_any
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_path

APT_ARCHIVES = "/var/cache/apt/archives"
#: In the VM, completed by mktemp(1) with random characters, so the name is not predictable.
TMP_PREFIX = "/var/tmp/vmrepair-conffile."  # noqa: S108 - a mktemp template inside the VM
#: Config files are small; a bigger "conffile" is not one we should be writing.
MAX_CONFFILE_BYTES = 1024 * 1024
#: Metadata of a conffile that does not exist any more (what dpkg installs them with).
DEFAULT_META = (0o644, 0, 0)


class RestoreConffileSpec(Strict):
    package: Annotated[str, Field(pattern=PACKAGE_PATTERN)]
    paths: list[PathTemplate] = Field(min_length=1)


@dataclass(frozen=True)
class RestoreConffileStep(Step):
    package: str
    paths: tuple[Template, ...]
    kind: ClassVar[str] = "restore_conffile"


def _convert(spec: RestoreConffileSpec) -> RestoreConffileStep:
    return RestoreConffileStep(spec.package, tuple(parse_template(p) for p in spec.paths))


def run_restore_conffile(step: RestoreConffileStep, ctx: RepairContext, io: StepIO) -> str:
    """Restore ``step.paths`` from ``step.package``'s cached ``.deb``.

    Raises:
        StepNotApplicableError: no (unambiguous) cached .deb, the package does not ship a path, or every
            path is already pristine.
        RepairStepError: a path is outside the component's config_paths, or a command/write failed.
    """
    roots = ctx.component.config_paths
    paths = [_resolve(render_path(t, ctx, io, roots, allow_root=True), ctx, roots) for t in step.paths]
    io.require_real_dirs(paths, roots)
    deb = _find_deb(step.package, ctx, io)
    shipped = _from_archive(deb, paths, ctx, io)
    if shipped is not None:
        changed = [p for p in paths if _restore_one(p, shipped.get(p), step.package, ctx, io)]
    else:
        changed = _unpacked(deb, paths, step.package, ctx, io)
    if not changed:
        raise io.not_applicable(f"{', '.join(paths)} already match {step.package}'s pristine copy")
    return f"restored {', '.join(changed)} from {posixpath.basename(deb)}"


@runtime_checkable
class DebFiles(Protocol):
    def deb_file(self, deb: str, path: str, *, max_bytes: int) -> bytes | None:
        """Raises: AgentError, TransportError."""
        ...


def _from_archive(deb: str, paths: list[str], ctx: RepairContext,
                  io: StepIO) -> dict[str, bytes | None] | None:
    """Each path's content as the .deb ships it (None: not a file it ships), read by the agent; None
    when the agent cannot read this archive (then it is unpacked instead)."""
    agent = ctx.agent
    if not isinstance(agent, DebFiles):
        return None
    try:
        return {p: agent.deb_file(deb, p, max_bytes=MAX_CONFFILE_BYTES) for p in paths}
    except AgentFailedError as exc:
        if exc.code == "too_large":
            raise io.fail(f"{deb} ships a file over {MAX_CONFFILE_BYTES} bytes among "
                          f"{', '.join(paths)}: {exc.message}") from exc
        return None


def _unpacked(deb: str, paths: list[str], package: str, ctx: RepairContext, io: StepIO) -> list[str]:
    tmp = io.run(["mktemp", "-d", TMP_PREFIX + "XXXXXXXX"]).stdout_text.strip()
    if not tmp.startswith(TMP_PREFIX) or "/" in tmp[len(TMP_PREFIX):]:
        raise io.fail(f"mktemp answered an unexpected path {tmp!r}")
    try:
        # The deb path is absolute (from the archive's listing), so it cannot be taken for an option.
        io.run(["dpkg-deb", "-x", deb, tmp])
        return [p for p in paths if _restore_one(p, _extracted(tmp + p, package, ctx, io), package, ctx, io)]
    finally:
        io.run(["rm", "-rf", "--", tmp], check=False)


def _extracted(extracted: str, package: str, ctx: RepairContext, io: StepIO) -> bytes | None:
    shipped = ctx.agent.manifest([extracted]).by_path().get(extracted)
    if shipped is None or shipped.type != "file":
        return None
    try:
        return ctx.agent.read_file(extracted, max_bytes=MAX_CONFFILE_BYTES)
    except TransportError as exc:
        raise io.fail(f"cannot read {extracted}: {exc.message}") from exc


def _resolve(path: str, ctx: RepairContext, roots: tuple[str, ...]) -> str:
    """Follow one symlink (lexically) when it stays in ``roots``: the package ships the file the link
    points at (sites-enabled/default -> sites-available/default)."""
    entry = ctx.agent.manifest([path]).by_path().get(path)
    if entry is not None and entry.type == "symlink" and entry.link:
        pointed = normalize(posixpath.join(posixpath.dirname(path), entry.link))
        if pointed and within_any(pointed, roots):
            return pointed
    return path


def _find_deb(package: str, ctx: RepairContext, io: StepIO) -> str:
    """The cached .deb of ``package`` (listed by the agent without reading any archive)."""
    try:
        listed = ctx.agent.manifest([APT_ARCHIVES], digests=False).entries
    except TransportError as exc:
        raise io.fail(f"cannot list {APT_ARCHIVES}: {exc.message}") from exc
    debs = sorted(e.path for e in listed if e.type == "file" and posixpath.dirname(e.path) == APT_ARCHIVES
                  and posixpath.basename(e.path).startswith(f"{package}_") and e.path.endswith(".deb"))
    if not debs:
        raise io.not_applicable(f"no {package}_*.deb in {APT_ARCHIVES} (apt cache cleaned?)")
    if len(debs) == 1:
        return debs[0]
    # Several versions cached: only the installed one's conffiles are pristine for this system.
    version = io.run(["dpkg-query", "-W", "-f=${Version}", package], check=False).stdout_text.strip()
    # Debian file names encode the epoch colon as %3a.
    prefix = f"{APT_ARCHIVES}/{package}_{version.replace(':', '%3a')}_"
    matching = [d for d in debs if version and d.startswith(prefix)]
    if len(matching) != 1:
        raise io.not_applicable(f"cannot tell which of {len(debs)} cached {package} .debs is installed")
    return matching[0]


def _restore_one(path: str, data: bytes | None, package: str, ctx: RepairContext, io: StepIO) -> bool:
    """Write ``data`` (the package's copy; None: it ships none) to ``path`` unless it is there already."""
    if data is None:
        raise io.not_applicable(f"{package} does not ship {path}")
    cur = ctx.agent.manifest([path]).by_path().get(path)
    if cur is not None and cur.type == "file" and cur.sha256 == hashlib.sha256(data).hexdigest():
        return False
    if cur is not None and cur.type != "file":
        raise io.fail(f"{path} is a {cur.type}; refusing to replace it with a file")
    mode, uid, gid = (cur.mode, cur.uid, cur.gid) if cur is not None else DEFAULT_META
    ctx.agent.write_file(path, data, mode=mode, uid=uid, gid=gid,
                         expect_sha256=cur.sha256 if cur is not None else None)
    io.note(f"restored {path} from {package} ({len(data)} bytes)")
    return True


KIND = register(StepKind(
    name="restore_conffile", order=40, spec=RestoreConffileSpec, step=RestoreConffileStep,
    convert=_convert, run=run_restore_conffile,
    describe=lambda step: f"restore {', '.join(t.raw for t in step.paths)} from {step.package}'s .deb",
    templates=lambda step: step.paths,
    template_fields=("paths",),
))
