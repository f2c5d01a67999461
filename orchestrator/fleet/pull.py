"""The daemon's bundle pickup: import the ``*.bundle`` files of ``fleet.pull_dir`` on an interval.

Every file goes through :func:`~orchestrator.fleet.imports.import_bundle`, the same checks as
`vmrepair fleet import`, so whoever can write the directory can at most make this host refuse
bundles: only trusted keys' fresh, newer bundles change anything. A file already imported (same
SHA-256) is skipped quietly, and a refused one is logged once per daemon run, not at every round.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import FleetError
from orchestrator.fleet.bundle import MAX_BUNDLE_BYTES
from orchestrator.fleet.imports import import_bundle
from orchestrator.state.db import StateDb

log = logging.getLogger(__name__)

SUFFIX = ".bundle"
#: A round looks at this many files at most (name order): a flooded directory cannot stall the daemon.
MAX_FILES_PER_ROUND = 200


@dataclass
class PullReport:
    imported: list[str] = field(default_factory=list)
    #: (file name, reason) of files refused this round for the first time.
    refused: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DirectoryPuller:
    """Imports new bundles of ``directory`` into ``db``; remembers what it refused (by content hash)."""

    directory: Path
    _refused: set[str] = field(default_factory=set)

    def pull(self, db: StateDb, *, now: dt.datetime | None = None) -> PullReport:
        """One round.

        Raises:
            StateError / StateCorruptError: from the store (a bundle's refusal is reported, not raised).
        """
        report = PullReport()
        seen = {str(r[0]) for r in db.query("SELECT sha256 FROM fleet_imports")}
        for path in self._candidates():
            data = _read_regular(path)
            if data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen or digest in self._refused:
                continue
            try:
                result = import_bundle(db, data, now=now)
            except FleetError as exc:
                self._refused.add(digest)
                report.refused.append((path.name, exc.message))
                log.warning("fleet bundle %s: %s", path, exc.message)
                continue
            seen.add(digest)
            report.imported.append(path.name)
            log.info("fleet bundle %s: imported version %d of key %s (%s)", path, result.version,
                     result.key_id, result.key_name)
        return report

    def _candidates(self) -> list[Path]:
        try:
            names = sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except OSError as exc:
            log.warning("fleet.pull_dir %s cannot be listed: %s", self.directory, exc.strerror or exc)
            return []
        return names[:MAX_FILES_PER_ROUND]


def _read_regular(path: Path) -> bytes | None:
    """The file's bytes (one more than the cap at most, refused by the import); None for a symlink,
    a FIFO (which would block the daemon) or anything else that is not a plain file."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        with path.open("rb") as handle:
            return handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        log.warning("fleet bundle %s cannot be read: %s", path, exc.strerror or exc)
        return None


class FleetPullJob:
    """A :class:`~orchestrator.daemon.scheduler.Job`: one :meth:`DirectoryPuller.pull` per interval,
    on a store opened for the round (SQLite connections stay on the thread that opened them)."""

    name = "fleet-pull"

    def __init__(self, *, interval_s: float, puller: DirectoryPuller, db: Callable[[], StateDb]) -> None:
        self.interval_s = interval_s
        self._puller = puller
        self._db = db

    def run(self) -> None:
        """Raises: StateError / StateCorruptError: the store failed (the scheduler audits it)."""
        with self._db() as db:
            report = self._puller.pull(db)
        if report.imported or report.refused:
            log.info("fleet pull: %d imported, %d refused", len(report.imported), len(report.refused))
