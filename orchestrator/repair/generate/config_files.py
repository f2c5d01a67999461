"""Family ``config``: the component's config files, judged by the baseline and by its config test.

Evidence and what it proposes:

- a file added since the baseline in an include directory (``*.d``, ``*-enabled``, ``conf.d``) of the
  component's config paths: the service loads it without anyone naming it → quarantine the newest;
- the config file changed most recently since the baseline → restore it (the ``revert`` family proposes
  the same steps when it ranks that file first; the duplicate is dropped);
- a file the config test blames (``/etc/...`` or ``/etc/...:LINE`` in the output of
  ``Component.config_test``, run in the VM, or in the issue's evidence), inside the component's config
  paths → restore it from the baseline; else, when it is (through the symlinks the capture recorded) a
  conffile of the component's packages that dpkg --verify reports changed, restore the package's
  pristine copy first; and quarantine it (after that copy, which a VM without the package's ``.deb``
  cannot restore).
"""

from __future__ import annotations

import posixpath
import re

from orchestrator.detect.packages import VerifyLine
from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups, packages
from orchestrator.repair.generate.drift import drift
from orchestrator.repair.generate.proposal import Proposal, literal
from orchestrator.repair.generate.revert import is_include_dir
from orchestrator.repair.generate.situation import Question, Situation, quote
from orchestrator.steps.paths import normalize, within_any

FAMILY = "config"
KINDS = frozenset({IssueKind.CONFIG_INVALID, IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE,
                   IssueKind.HTTP_DOWN, IssueKind.PORT_DOWN})
CONFIG_TEST_TIMEOUT_S = 60.0
#: ``/etc/nginx/sites-enabled/default:12`` or ``in /etc/app.conf line 3``: a path under /etc.
BLAMED = re.compile(r"(?<![\w./-])(/etc/(?:[\w.@+-]+/)*[\w.@+-]+)(?::(\d+))?")


def questions(situation: Situation) -> list[Question]:
    """What :func:`generate` asks the VM (its config test, unless the issue carries the test's output),
    asked ahead side by side (:func:`~orchestrator.repair.generate.prefetch`)."""
    if situation.issue.kind not in KINDS or not situation.component.config_paths:
        return []
    if _test_output(situation) or not situation.component.config_test:
        return []
    return [(list(situation.component.config_test), CONFIG_TEST_TIMEOUT_S)]


def _test_output(situation: Situation) -> str:
    return situation.issue.evidence.get("output", "") if situation.issue.kind is IssueKind.CONFIG_INVALID \
        else ""


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS or not situation.component.config_paths:
        return []
    return _blamed(situation) + _added_include(situation) + _newest_change(situation)


def _added_include(situation: Situation) -> list[Proposal]:
    roots = situation.component.config_paths
    added = [d for d in drift(situation, roots) if d.change == "added" and d.now is not None
             and d.now.type in ("file", "symlink") and is_include_dir(posixpath.dirname(d.path))]
    if not added:
        return []
    newest = max(added, key=lambda d: (situation.names(d.path), d.mtime, d.path))
    directory = posixpath.dirname(newest.path)
    return [Proposal(
        FAMILY, "quarantine-added", newest.path,
        f"Quarantine {quote(newest.path)}: added since the baseline to the include directory "
        f"{quote(directory)}" + (f" (the newest of {len(added)})" if len(added) > 1 else "") + ".",
        ({"quarantine": {"path": literal(newest.path), "within": [directory]}},
         *followups.after_change(situation.component, [newest.path])),
        effectiveness=0.8, cause="file_added", confidence=0.85 if situation.names(newest.path) else 0.7)]


def _newest_change(situation: Situation) -> list[Proposal]:
    changed = [d for d in drift(situation, situation.component.config_paths)
               if d.change == "content" and d.now is not None and d.now.type == "file"]
    if not changed:
        return []
    newest = max(changed, key=lambda d: (d.mtime, d.path))
    return [_restore(situation, newest.path, f"{newest.describe()}, the most recent change", 0.65)]


def _blamed(situation: Situation) -> list[Proposal]:
    output = _test_output(situation)
    if not output and situation.component.config_test:
        result = situation.ask(situation.component.config_test, timeout=CONFIG_TEST_TIMEOUT_S)
        output = "" if result is None or result.succeeded else result.stdout_text + result.stderr_text
    roots = situation.component.config_paths
    for match in BLAMED.finditer(output):
        path = normalize(match.group(1))
        if path is None or not within_any(path, roots) or path in roots:
            continue
        line = f" line {match.group(2)}" if match.group(2) else ""
        why = f"the config test `{quote(' '.join(situation.component.config_test))}` blames it{line}"
        if path in situation.recorded:
            return [_restore(situation, path, why, 0.9)]
        real = situation.resolve(path)
        shipped = packages.changed_conffile(situation, real) if within_any(real, roots) else None
        first = [_pristine(situation, real, shipped, why)] if shipped is not None else []
        if path not in situation.now:
            return first
        # Kept behind the package's copy, which a VM without the .deb cannot restore (a host layer
        # keeps no apt cache): the quarantine then still runs.
        unshipped = ("no package of the component ships it as changed" if shipped is None
                     else "the package's copy is tried first")
        return [*first, Proposal(
            FAMILY, "quarantine-blamed", path,
            f"Quarantine {quote(path)}: {why}, "
            + ("and the baseline does not have it." if situation.baseline is not None
               else f"there is no baseline, and {unshipped}."),
            ({"quarantine": {"path": literal(path)}},
             *followups.after_change(situation.component, [path])),
            effectiveness=0.75, cause="config_blamed", confidence=0.85)]
    return []


def _pristine(situation: Situation, path: str, shipped: tuple[str, VerifyLine], why: str) -> Proposal:
    """The blamed file is a conffile dpkg says changed: the package's copy is a known-good version of
    exactly that file, so it is restored rather than the file quarantined (a file a package ships is
    part of the service's configuration, not something added to it). Ranked like the baseline's copy:
    two independent witnesses (the config test, the package database) name the same file."""
    package, line = shipped
    return Proposal(
        FAMILY, "restore-blamed-conffile", path,
        f"Restore the pristine {quote(path)} of {quote(package)}: {why}, and dpkg --verify in the VM "
        f"reports {quote(line.describe())}.",
        ({"restore_conffile": {"package": package, "paths": [literal(path)]}},
         *followups.after_change(situation.component, [path])),
        effectiveness=0.8, cause="conffile_blamed", confidence=0.9)


def _restore(situation: Situation, path: str, why: str, confidence: float) -> Proposal:
    return Proposal(
        FAMILY, "restore-config", path, f"Restore {quote(path)} from the baseline: {quote(why)}.",
        ({"restore_baseline": {"paths": [literal(path)]}},
         *followups.after_change(situation.component, [path])),
        effectiveness=0.8, cause="config_changed", confidence=confidence)
