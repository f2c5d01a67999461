"""Family ``state``: the directories a service writes to, and the modes and owners of its own paths.

Evidence and what it proposes:

- a state, log, writable or working directory (``Component.writable_paths``, the unit's
  ``StateDirectory=``, ``LogsDirectory=``, ``WorkingDirectory=`` in the VM) that is missing on the
  target → ``make_dir`` with the baseline's mode and owner, else the unit's (``User=``/``Group=``,
  ``StateDirectoryMode=``/``LogsDirectoryMode=``, 0755 by default), then a restart;
- a writable or data directory whose own mode or owner differs from the baseline → ``set_meta`` from
  the baseline; without a baseline, a writable directory the unit's user cannot write (the
  ``writable:`` probe's issue) → ``set_meta`` giving it to ``User=``/``Group=``;
- a system path (``/tmp``, ``/etc/shadow`` ...) whose mode or owner is wrong, or that is missing →
  ``set_meta``/``make_dir`` from the rules of :mod:`orchestrator.detect.sysdirs`;
- packaged files whose mode or owner differ from what their package ships (the ``pkgmeta:`` probe's
  issue) → one ``set_meta`` per path, to the package's values (or dpkg-statoverride's), all at once:
  a ``chmod -R`` gone wrong is one fault however many files it touched.

Config and unit paths are the ``revert`` family's: it compares them with the baseline already.
"""

from __future__ import annotations

import json
import posixpath
import re

from orchestrator.detect.pkgmeta import PREFIX as PKGMETA_PREFIX
from orchestrator.detect.pkgmeta import RESTORE_KEY
from orchestrator.detect.sysdirs import RULES as SYSTEM_PATHS
from orchestrator.detect.sysdirs import stat_path
from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups
from orchestrator.repair.generate.drift import drift
from orchestrator.repair.generate.proposal import Proposal, RawStep, literal, to_steps
from orchestrator.repair.generate.situation import Situation, quote
from orchestrator.steps.paths import is_within, own_paths

FAMILY = "state"
KINDS = frozenset({IssueKind.PERMISSIONS, IssueKind.PATH_MISSING, IssueKind.UNIT_FAILED,
                   IssueKind.UNIT_INACTIVE})
DEFAULT_MODE = 0o755
#: The unit property that names directories, the directory they are relative to, and their mode's.
_DIRECTORIES = (("StateDirectory", "/var/lib", "StateDirectoryMode"),
                ("LogsDirectory", "/var/log", "LogsDirectoryMode"))


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS:
        return []
    if situation.issue.subject in SYSTEM_PATHS:
        return _system_path(situation)
    if situation.issue.probe.startswith(PKGMETA_PREFIX):
        return _package_meta(situation)
    return _missing_dirs(situation) + _dir_meta(situation)


# -- missing directories --------------------------------------------------------------------------


def _wanted_dirs(situation: Situation) -> dict[str, tuple[int, str]]:
    """Directory → (mode, where the mode comes from) for every directory the component writes to."""
    found: dict[str, tuple[int, str]] = dict.fromkeys(situation.component.writable_paths,
                                                      (DEFAULT_MODE, "writable path"))
    for path in situation.component.log_dirs:
        found.setdefault(path, (DEFAULT_MODE, "log directory"))
    for unit in situation.units[:1]:
        shown = situation.show(unit)
        for prop, base, mode_prop in _DIRECTORIES:
            mode = _mode(shown.get(mode_prop, ""))
            for name in shown.get(prop, "").split():
                path = posixpath.normpath(posixpath.join(base, name.split(":", 1)[0]))
                if path.startswith(base + "/"):
                    found[path] = (mode, f"{prop}= of {unit}")
        work = shown.get("WorkingDirectory", "").lstrip("-!")
        if work.startswith("/") and work not in ("/", "/root"):
            found.setdefault(posixpath.normpath(work), (DEFAULT_MODE, f"WorkingDirectory= of {unit}"))
    allowed = own_paths(situation.component)
    return {p: v for p, v in found.items() if any(p == r or p.startswith(r + "/") for r in allowed)}


def _mode(text: str) -> int:
    return int(text, 8) if text and len(text) <= 5 and all(c in "01234567" for c in text) else DEFAULT_MODE


def _is_missing(situation: Situation, path: str) -> bool:
    if path in situation.now:
        return False
    if path in situation.target.missing:
        return True
    # Not captured: the VM holds the target's fault, ask it (stat follows a symlink, as the unit would).
    return stat_path(situation.vm, path) is None


def _owner(situation: Situation) -> tuple[str, str]:
    component = situation.component
    shown = situation.show(situation.units[0]) if situation.units else {}
    user = shown.get("User") or component.user or "root"
    group = shown.get("Group") or component.group or user
    return user, group


def _missing_dirs(situation: Situation) -> list[Proposal]:
    proposals = []
    for path, (mode, source) in sorted(_wanted_dirs(situation).items()):
        if not _is_missing(situation, path):
            continue
        then = situation.recorded.get(path)
        if then is not None and then.type == "dir":
            spec = (then.mode & 0o7777, then.owner, then.group)
            how = f"the baseline's {spec[0]:04o} {spec[1]}:{spec[2]}"
        else:
            spec = (mode, *_owner(situation))
            how = f"{spec[0]:04o} {spec[1]}:{spec[2]} from the unit ({source})"
        step: RawStep = {"make_dir": {"path": literal(path), "mode": f"{spec[0]:04o}", "owner": spec[1],
                                      "group": spec[2]}}
        proposals.append(Proposal(
            FAMILY, "make-dir", path,
            f"Create the missing directory {quote(path)} ({quote(source)}) with {quote(how)}.",
            (step, *followups.after_change(situation.component, [path])),
            effectiveness=0.85, cause="directory_missing",
            confidence=0.9 if situation.names(path) else 0.7))
    return proposals


# -- modes and owners of the component's directories ----------------------------------------------


def _dir_meta(situation: Situation) -> list[Proposal]:
    component = situation.component
    roots = tuple(dict.fromkeys((*component.writable_paths, *component.data_paths)))
    proposals = []
    changed = {d.path: d for d in drift(situation, roots) if d.path in roots and d.change == "meta"}
    for path, item in sorted(changed.items()):
        if item.then is not None:
            spec = (item.then.mode & 0o7777, item.then.owner, item.then.group)
            proposals.append(_set_meta(situation, path, spec, item.describe(), 0.85))
    subject = situation.issue.subject
    if (not changed and situation.issue.kind is IssueKind.PERMISSIONS and subject in component.writable_paths
            and subject not in situation.recorded and component.user not in ("", "root", "0")):
        user, group = _owner(situation)
        # The mode is left alone: the writable probe's evidence says who cannot write, not which mode
        # the service expects; giving the directory to its user is what systemd itself does.
        proposals.append(Proposal(
            FAMILY, "chown", subject,
            f"Give {quote(subject)} to {quote(user)}:{quote(group)}, the unit's user: "
            f"{quote(situation.issue.summary)}.",
            ({"set_meta": {"path": literal(subject), "owner": user, "group": group}},
             *followups.after_change(component, [subject])),
            effectiveness=0.75, cause="not_writable", confidence=0.7))
    return proposals


def _set_meta(situation: Situation, path: str, spec: tuple[int, str, str], why: str,
              confidence: float) -> Proposal:
    mode, owner, group = spec
    return Proposal(
        FAMILY, "set-meta", path,
        f"Set {quote(path)} to {mode:04o} {quote(owner)}:{quote(group)}: {quote(why)}.",
        ({"set_meta": {"path": literal(path), "mode": f"{mode:04o}", "owner": owner, "group": group}},
         *followups.after_change(situation.component, [path])),
        effectiveness=0.85, cause="meta_changed", confidence=confidence)


# -- modes and owners as the packages ship them ---------------------------------------------------

_MODE = re.compile(r"^[0-7]{4}$")


def package_values(situation: Situation) -> list[tuple[str, int, str, str]]:
    """The pkgmeta issue's (path, mode, owner, group) to restore: only entries for paths of the
    component that make a valid ``set_meta`` step (the evidence is the target's word, untrusted; one
    bad entry must not sink the strategy, as it would in the strategy's own validation)."""
    try:
        raw = json.loads(situation.issue.evidence.get(RESTORE_KEY, "[]"))
    except ValueError:
        return []
    roots = own_paths(situation.component)
    found = []
    for item in raw if isinstance(raw, list) else []:
        if not (isinstance(item, list) and len(item) == 4 and all(isinstance(x, str) for x in item)):
            continue
        path, mode, owner, group = item
        if (path.startswith("/") and any(is_within(path, r) for r in roots) and _MODE.match(mode)
                and to_steps([_meta_step(path, mode, owner, group)]) is not None):
            found.append((path, int(mode, 8), owner, group))
    return found


def _meta_step(path: str, mode: str, owner: str, group: str) -> RawStep:
    return {"set_meta": {"path": literal(path), "mode": mode, "owner": owner, "group": group}}


def _package_meta(situation: Situation) -> list[Proposal]:
    values = package_values(situation)
    if not values:
        return []
    steps = [_meta_step(path, f"{mode:04o}", owner, group) for path, mode, owner, group in values]
    paths = [path for path, *_ in values]
    first = values[0]
    more = f" and {len(values) - 1} more path(s)" if len(values) > 1 else ""
    return [Proposal(
        FAMILY, "package-meta", situation.issue.subject,
        f"Give {quote(first[0])}{more} the mode and owner their package ships "
        f"({first[1]:04o} {quote(first[2])}:{quote(first[3])} for the first).",
        (*steps, *followups.after_change(situation.component, paths)),
        # The package's own word (or the admin's statoverride): as strong as a baseline's.
        effectiveness=0.85, cause="meta_changed", confidence=0.85)]


# -- system paths (host invariants) ---------------------------------------------------------------


def _system_path(situation: Situation) -> list[Proposal]:
    rule = SYSTEM_PATHS[situation.issue.subject]
    spec = (rule.mode, rule.owner, rule.group)
    if situation.issue.kind is IssueKind.PATH_MISSING and rule.type == "dir":
        return [Proposal(
            FAMILY, "make-dir", rule.path,
            f"Create {quote(rule.path)} as {rule.mode:04o} {rule.owner}:{rule.group}: "
            f"{quote(rule.expected)}.",
            ({"make_dir": {"path": literal(rule.path), "mode": f"{rule.mode:04o}", "owner": rule.owner,
                           "group": rule.group}},),
            effectiveness=0.9, cause="system_path_missing", confidence=0.9)]
    if situation.issue.kind is IssueKind.PERMISSIONS:
        return [_set_meta(situation, rule.path, spec, rule.expected, 0.9)]
    return []

