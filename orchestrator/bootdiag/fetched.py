"""A vital package's ``.deb`` the target's apt cache lacks, taken from what the mirrored-VM machinery
already fetched: the orchestrator's download cache of the host layers
(:func:`orchestrator.layers.debs.fetch_cache_dir`), at exactly the version and architecture the target
has installed.

Boot diagnostics never download (there may be no network at boot, and a reinstall at another version
is an upgrade nobody asked for). A file from the download cache is one the layer machinery checked
against the mirror's signed index when it was fetched; here its control fields are checked once more
against the target's installed package before it is copied into the target's ``/var/cache/apt/
archives`` under its canonical name, where the reinstall (:func:`orchestrator.bootdiag.remediate.
reinstall`) finds it like any cached ``.deb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bootdiag.presence import PACKAGE_RE
from orchestrator.detect.common import run_command
from orchestrator.errors import CommandTimeoutError, LayerError
from orchestrator.facts.model import Package
from orchestrator.facts.parse import parse_packages
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.layers.debcheck import control_mismatch
from orchestrator.layers.debname import deb_file_name
from orchestrator.steps.kinds.restore_conffile import APT_ARCHIVES
from orchestrator.transport.base import Transport

QUERY_TIMEOUT_S = 60.0
_STEP = "bootdiag-fetched-debs"


@dataclass(frozen=True)
class FetchedDebs:
    """Where the orchestrator keeps fetched ``.deb`` files (``debs/``) and how to run dpkg-deb there."""

    local: Transport
    cache_dir: Path

    @property
    def debs_dir(self) -> Path:
        return self.cache_dir / "debs"


def installed_packages(transport: Transport, names: Sequence[str]) -> dict[str, Package]:
    """Name -> the installed package (version, architecture) of ``names`` on the target, read and
    validated as the target facts read them (:func:`orchestrator.facts.parse.parse_packages`); names dpkg
    does not know, or that are not package names, are left out.

    Raises:
        TransportError: the target cannot be reached.
    """
    valid = sorted({n for n in names if PACKAGE_RE.match(n)})
    if not valid:
        return {}
    try:
        result = run_command(transport, ["dpkg-query", "-W", "-f", PACKAGE_FORMAT, "--", *valid],
                             timeout=QUERY_TIMEOUT_S)
    except CommandTimeoutError:
        return {}
    parsed = parse_packages("" if result is None else result.stdout_text).items
    return {p.name: p for p in parsed if p.name in valid and p.is_installed}


def stage_fetched(transport: Transport, fetched: FetchedDebs,
                  names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Copy into the target's apt cache the ``.deb`` of each of ``names`` that the download cache holds
    at the target's installed version; (names staged, notes on files found but refused).

    Raises:
        TransportError / FileTransferError: the target cannot be reached or written.
    """
    staged: list[str] = []
    notes: list[str] = []
    for name, package in installed_packages(transport, names).items():
        file_name = deb_file_name(package)
        if file_name is None:
            continue
        source = fetched.debs_dir / file_name
        if source.is_symlink() or not source.is_file():
            continue
        try:
            why = control_mismatch(fetched.local, source, package, step=_STEP)
        except LayerError as exc:
            notes.append(f"{file_name}: {exc.message}")
            continue
        if why is not None:
            notes.append(f"{file_name} in {fetched.debs_dir} {why}: not used")
            continue
        transport.put_file(source, f"{APT_ARCHIVES}/{file_name}", mode=0o644)
        staged.append(name)
    return staged, notes
