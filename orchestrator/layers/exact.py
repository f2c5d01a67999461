"""The target's packages as single verified ``.deb`` files, for a repair step that reinstalls one
(:class:`~orchestrator.steps.context.DebSource`).

The same plumbing as the host layers (:func:`orchestrator.layers.debs.fetch`): the target's apt cache
first (copied read-only, its control fields and md5sums checked against the target's package database),
else the signed Debian mirror (hash checked against the signed index). Only the version the target's
facts say is installed is ever fetched. Files land in ``dest`` (the session's ``debs/``) under the name
:func:`~orchestrator.layers.debname.deb_file_name` gives them, and are read back for the fix package only
when they still hash to what the step recorded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.config.settings import Settings
from orchestrator.errors import LayerError
from orchestrator.facts.model import Package, TargetFacts
from orchestrator.layers import debs
from orchestrator.layers.build import default_mirror
from orchestrator.layers.debname import deb_file_name
from orchestrator.steps.context import VerifiedDeb
from orchestrator.transport.base import Transport

STEP = "reinstall"


class TargetDebs:
    """Implements :class:`orchestrator.steps.context.DebSource` for one target (see the module)."""

    def __init__(self, target: Transport, facts: TargetFacts, *, local: Transport, settings: Settings,
                 dest: Path) -> None:
        self.target, self.facts, self.local, self.settings, self.dest = target, facts, local, settings, dest

    def obtain(self, name: str, version: str, arch: str) -> VerifiedDeb:
        """Raises: LayerError (another version on the target, or no verified copy), StateError."""
        wanted = next((p for p in self.facts.packages if p.name == name and p.arch == arch), None)
        if wanted is None or wanted.version != version:
            has = "does not have it" if wanted is None else f"has {wanted.version}"
            raise LayerError(f"the target {has}, not {name}:{arch} {version}", step=STEP)
        fetched = debs.fetch(self.target, [wanted], self.dest, local=self.local,
                             settings=self.settings.layers,
                             default_mirror=default_mirror(self.settings, self.facts),
                             suite=self.facts.os.codename, arch=arch if arch != "all" else self.facts.arch,
                             cache_dir=debs.fetch_cache_dir(self.settings.image_store))
        deb = next((d for d in fetched.debs if d.package == wanted), None)
        if deb is None:
            raise LayerError(f"no verified .deb of {wanted.spec}: {'; '.join(fetched.notes) or 'not found'}",
                             step=STEP)
        return VerifiedDeb(name, version, arch, deb.path, deb.sha256, deb.path.stat().st_size, deb.source)

    def content(self, name: str, version: str, arch: str, sha256: str) -> bytes | None:
        return read_verified(self.dest, name, version, arch, sha256)


def read_verified(dest: Path, name: str, version: str, arch: str, sha256: str) -> bytes | None:
    """A .deb stored in ``dest`` by :class:`TargetDebs`, if it is there and hashes to ``sha256``."""
    file_name = deb_file_name(Package(name, version, arch, "ii"))
    if file_name is None:
        return None
    try:
        data = (dest / file_name).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
