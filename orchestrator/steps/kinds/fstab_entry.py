"""``fstab_entry``: make the fstab entries that would stop the next boot harmless, touching nothing else::

    - fstab_entry: {action: nofail, path: /etc/fstab}

The file is read in the VM and judged by the very rules of the ``fstab:`` probe
(:func:`orchestrator.detect.fstab.analyse`, devices resolved in the VM). Only the entries it finds
broken are edited — mounts the boot requires whose source does not exist, and swap areas whose device
does not exist (those only delay the boot, but the probe reports them too) — and, when the issue's
evidence lists the lines the probe found broken on the target, only those of them: the VM has the
template's disks, not the target's, so a target's healthy ``UUID=`` entry (its /home, its /boot/efi)
looks missing in the VM too, and making it optional there would ship that change to the target. Left
alone, such an entry keeps the probe failing in the VM, and the attempt fails instead.

- ``nofail`` appends ``nofail`` and ``x-systemd.device-timeout=10s`` to the options field (each only
  when absent), so the mount stays configured but optional, and a missing device costs 10 s of boot
  instead of systemd's default 90 s;
- ``comment`` prefixes the line with ``# vmrepair: disabled, device missing: `` and keeps it otherwise
  as written, for the operator to restore.

Every other byte stays as it was: other lines, the spacing of the edited line, CRLF line endings (a
``\\r`` stays before its ``\\n``), a missing final newline. The edits are pure functions over bytes
(:func:`add_nofail`, :func:`comment_out`); the file is written back with its mode and owner, and only
if it still holds what was read (``expect_sha256``). The change reaches the target through the fix
package's diff of the component's config paths (``/etc/fstab``), so nothing is recorded for replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from orchestrator.detect.fstab import MAX_FSTAB_BYTES, analyse, listed_lines, probe_name
from orchestrator.detect.fstab_table import FstabEntry, parse_fstab, takes_part_in_boot
from orchestrator.playbooks.fields import PathTemplate, Strict
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.session.store import cap_text
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import normalize
from orchestrator.steps.registry import Step, StepKind, register

#: Added to the options of an entry made optional; each only when the entry does not set it already.
NOFAIL_OPTIONS = ("nofail", "x-systemd.device-timeout=10s")
DISABLED_PREFIX = b"# vmrepair: disabled, device missing: "


class FstabEntrySpec(Strict):
    action: Literal["nofail", "comment"] = Field(description=(
        "what to do with the entries that would stop the next boot (missing device, no nofail): "
        "nofail adds nofail,x-systemd.device-timeout=10s to their options; comment comments them out"))
    path: PathTemplate = Field(default="{subject}", description=(
        "the fstab file: must be one of the component's fstab paths"))


@dataclass(frozen=True)
class FstabEntryStep(Step):
    #: nofail: make the entries that would stop the boot optional; comment: comment them out.
    action: Literal["nofail", "comment"]
    path: Template
    kind: ClassVar[str] = "fstab_entry"


def _convert(spec: FstabEntrySpec) -> FstabEntryStep:
    return FstabEntryStep(spec.action, parse_template(spec.path))


def _describe(step: FstabEntryStep) -> str:
    how = "add nofail to" if step.action == "nofail" else "comment out"
    return f"{how} the entries of {step.path.raw} whose device is missing"


def add_nofail(data: bytes, entries: Iterable[FstabEntry]) -> bytes:
    """``data`` with :data:`NOFAIL_OPTIONS` appended to the options field of each of ``entries``
    (entries parsed from ``data``); an entry without an options field gets one."""
    edits = []
    for entry in entries:
        extra = [o for o in NOFAIL_OPTIONS if o.partition("=")[0] not in entry.option_names]
        if extra:
            glue = "," if entry.has_options_field else " "
            edits.append((entry.offset + entry.options_end, (glue + ",".join(extra)).encode()))
    return _splice(data, edits)


def comment_out(data: bytes, entries: Iterable[FstabEntry]) -> bytes:
    """``data`` with each line of ``entries`` (parsed from ``data``) prefixed by :data:`DISABLED_PREFIX`."""
    return _splice(data, [(entry.offset, DISABLED_PREFIX) for entry in entries])


def _splice(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    # Back to front, so the offsets of the edits still to make stay valid.
    for at, text in sorted(edits, reverse=True):
        out[at:at] = text
    return bytes(out)


def run_fstab_entry(step: FstabEntryStep, ctx: RepairContext, io: StepIO) -> str:
    """Edit the entries of the component's fstab that would stop (or slow) the next boot.

    Raises:
        StepNotApplicableError: the file does not exist, or no entry of it (of those the issue lists)
            has a missing source.
        RepairStepError: the path is not one of the component's fstab paths, is not a regular file, or
            the edit would not have made the entries harmless (refused, nothing written).
        TransportError: the agent failed (the attempt fails).
    """
    raw = step.path.render(ctx.values())
    path = normalize(raw)
    allowed = ctx.component.fstab
    if path is None or path not in allowed:
        raise io.fail(f"refusing {raw!r}: not an fstab file of {ctx.component.name} "
                      f"({', '.join(allowed) or 'it has none'})")
    current = ctx.agent.manifest([path]).by_path().get(path)
    if current is None:
        raise io.not_applicable(f"{path} does not exist")
    if current.type != "file":
        # Never write through a symlink: it could point anywhere.
        raise io.fail(f"{path} is a {current.type}, not a regular file; refusing to edit it")
    data = ctx.agent.read_file(path, max_bytes=MAX_FSTAB_BYTES)
    broken = analyse(ctx.agent, data).broken
    if not broken:
        raise io.not_applicable(f"no entry of {path} names a missing device: nothing would stop the boot")
    on_target = listed_lines(ctx.issue.evidence) if ctx.issue.probe == probe_name(path) else frozenset()
    if on_target:
        ignored = [n.entry.line for n in broken if n.entry.line not in on_target]
        if ignored:
            io.note(f"left line(s) {', '.join(map(str, ignored))} of {path} alone: their device is missing "
                    "in the VM but was found on the target")
        broken = tuple(n for n in broken if n.entry.line in on_target)
        if not broken:
            raise io.not_applicable(f"the line(s) of {path} the target reported are not broken here")
    entries = [need.entry for need in broken]
    edited = add_nofail(data, entries) if step.action == "nofail" else comment_out(data, entries)
    lines = {entry.line for entry in entries}
    still = [e.line for e in parse_fstab(edited) if e.line in lines and takes_part_in_boot(e)]
    if still:
        raise io.fail(f"the edit would leave line(s) {', '.join(map(str, still))} of {path} in the boot; "
                      "nothing written")
    ctx.agent.write_file(path, edited, mode=current.mode, uid=current.uid, gid=current.gid,
                         expect_sha256=hashlib.sha256(data).hexdigest())
    done = "made optional (nofail)" if step.action == "nofail" else "commented out"
    for need in broken:
        io.note(f"{path} line {need.entry.line} ({cap_text(need.entry.target, 200)}): {done}; "
                f"{cap_text(need.describe(), 300)}")
    targets = ", ".join(cap_text(need.entry.target, 200) for need in broken[:10])
    more = f" and {len(broken) - 10} more" if len(broken) > 10 else ""
    return f"{done} {len(broken)} entr{'y' if len(broken) == 1 else 'ies'} of {path}: {targets}{more}"


KIND = register(StepKind(
    name="fstab_entry", order=100, spec=FstabEntrySpec, step=FstabEntryStep, convert=_convert,
    run=run_fstab_entry, describe=_describe,
    templates=lambda step: (step.path,),
    template_fields=("path",),
))
