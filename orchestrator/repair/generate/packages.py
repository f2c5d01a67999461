"""Family ``package``: the component's Debian packages, as dpkg in the VM sees them.

Evidence and what it proposes, per package of the component:

- half-installed, unpacked or half-configured, or flagged reinstall-required (``dpkg-query -W -f
  '${db:Status-Abbrev}'``, the ``dpkg:`` probe's first question) → ``dpkg_configure``;
- ``dpkg --verify`` reports a packaged file that is not a conffile missing or changed →
  ``reinstall_package``;
- a conffile missing or changed, inside the component's config paths → ``restore_conffile`` (the
  package's pristine copy; an admin's edit is normal, so this ranks below the baseline's copy).

``dpkg_configure`` and ``reinstall_package`` are step kinds of their own; a build that does not have
them registered simply proposes nothing for those (:func:`~orchestrator.repair.generate.proposal.to_steps`).
"""

from __future__ import annotations

from orchestrator.detect.packages import (
    QUERY_TIMEOUT_S,
    VERIFY_TIMEOUT_S,
    Installed,
    Verification,
    VerifyLine,
    parse_status,
    parse_verify,
    status_argv,
    verify_argv,
)
from orchestrator.facts.parse import PACKAGE_NAME
from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups
from orchestrator.repair.generate.proposal import Proposal, literal
from orchestrator.repair.generate.situation import Question, Situation, quote
from orchestrator.steps.paths import within_any

FAMILY = "package"
KINDS = frozenset({IssueKind.PACKAGE_BROKEN, IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE,
                   IssueKind.CONFIG_INVALID, IssueKind.PATH_MISSING})
_HALF = frozenset("HUF")
_QUERY_OK = (0, 1)


def _wanted(situation: Situation) -> list[str]:
    return [p for p in dict.fromkeys(situation.component.packages) if PACKAGE_NAME.match(p)]


def questions(situation: Situation) -> list[Question]:
    """What :func:`generate` asks the VM, asked ahead side by side (:func:`~orchestrator.repair.generate.
    prefetch`): the packages' state, and each one's files (a verify asked for a package that turns out
    half-configured, or by another name for Multi-Arch, is asked for nothing)."""
    wanted = _wanted(situation) if situation.issue.kind in KINDS else []
    if not wanted:
        return []
    return [(status_argv(wanted), QUERY_TIMEOUT_S),
            *((verify_argv([name]), VERIFY_TIMEOUT_S) for name in wanted)]


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS:
        return []
    proposals: list[Proposal] = []
    for item in _states(situation):
        if item.status in _HALF or item.needs_reinstall:
            proposals.append(_configure(situation, item.name, item.describe()))
        elif item.status == "i":
            checked = _verified(situation, item.binary)
            proposals += [] if checked is None else _verify(situation, item.name, checked)
    return proposals


def changed_conffile(situation: Situation, path: str) -> tuple[str, VerifyLine] | None:
    """The installed package of the component that ships ``path`` as a conffile, and dpkg --verify's
    line saying it changed or is missing in the VM; None when no such package reports it (or dpkg
    cannot tell). Asks what :func:`questions` prefetches, so it costs nothing more in a diagnosis."""
    for item in _states(situation):
        checked = _verified(situation, item.binary) if item.status == "i" else None
        for line in () if checked is None else (*checked.broken, *checked.edited_conffiles):
            if line.is_conffile and line.path == path:
                return item.name, line
    return None


def _states(situation: Situation) -> list[Installed]:
    """The component's packages as dpkg in the VM lists them, in the component's order ([] when dpkg
    cannot tell)."""
    wanted = _wanted(situation)
    if not wanted:
        return []
    result = situation.ask(status_argv(wanted), timeout=QUERY_TIMEOUT_S)
    if result is None or result.exit_status not in _QUERY_OK:
        return []
    states, _ = parse_status(result.stdout_text, wanted)
    return [item for name in wanted for item in states.get(name, [])]


def _verified(situation: Situation, binary: str) -> Verification | None:
    """``dpkg --verify`` of one installed package in the VM (None when it cannot run)."""
    result = situation.ask(verify_argv([binary]), timeout=VERIFY_TIMEOUT_S)
    if result is None or result.exit_status not in _QUERY_OK:
        return None
    return parse_verify(result.stdout_text)


def _configure(situation: Situation, package: str, state: str) -> Proposal:
    return Proposal(
        FAMILY, "dpkg-configure", package,
        f"Finish configuring {quote(package)}: dpkg in the VM reports {quote(state)}.",
        ({"dpkg_configure": {"package": package}}, *followups.after_change(situation.component, [])),
        effectiveness=0.8, cause="package_half_configured", confidence=0.9)


def _verify(situation: Situation, package: str, checked: Verification) -> list[Proposal]:
    """``package`` names it in steps (the spec's package-name syntax); ``checked`` is dpkg --verify of
    its binary (``libc6:amd64`` for Multi-Arch: same)."""
    proposals: list[Proposal] = []
    files = [line for line in checked.broken if not line.is_conffile]
    if files:
        listed = ", ".join(quote(line.describe()) for line in files[:3])
        proposals.append(Proposal(
            FAMILY, "reinstall", package,
            f"Reinstall {quote(package)}: dpkg --verify in the VM reports {listed}"
            + (f" and {len(files) - 3} more" if len(files) > 3 else "") + ".",
            ({"reinstall_package": {"package": package}}, *followups.after_change(situation.component, [])),
            effectiveness=0.7, cause="package_files_changed", confidence=0.85))
    roots = situation.component.config_paths
    conffiles = [line for line in (*checked.broken, *checked.edited_conffiles)
                 if line.is_conffile and line.path and within_any(line.path, roots)]
    if conffiles:
        paths = sorted({line.path for line in conffiles})
        proposals.append(Proposal(
            FAMILY, "restore-conffile", package,
            f"Restore the pristine {', '.join(quote(p) for p in paths[:3])} of {quote(package)}: "
            f"{quote(conffiles[0].describe())} per dpkg --verify in the VM.",
            ({"restore_conffile": {"package": package, "paths": [literal(p) for p in paths]}},
             *followups.after_change(situation.component, paths)),
            effectiveness=0.6, cause="conffile_changed",
            confidence=0.8 if any(situation.names(p) for p in paths) else 0.5))
    return proposals
