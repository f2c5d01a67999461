"""The playbook catalog: the shipped playbooks, plus the local drop-ins that add to or override them.

``settings.playbooks_dir`` (default: the copies shipped in the package) is read first, then the
``*.yaml`` files of ``settings.playbooks_dropin_dir`` (default ``/etc/vmrepair/playbooks.d``; a
missing directory means no drop-ins). A drop-in whose ``name:`` equals a shipped playbook's replaces
it in place (so ranking ties still break in the shipped order); any other drop-in is appended, in
file-name order. Every file goes through :func:`~orchestrator.playbooks.loader.load_playbooks`, so a
malformed drop-in fails the whole catalog with the usual ``file: key.path: message`` error: a local
fix the operator believes active must never be skipped silently.

Strategy names key the success history, so they stay unique across the final catalog; a replaced
playbook's strategies leave with it, which lets an override keep (and extend) the shipped names.
"""

from __future__ import annotations

import enum
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.settings import Settings
from orchestrator.errors import PlaybookError
from orchestrator.playbooks.loader import load_playbooks
from orchestrator.playbooks.model import Playbook

log = logging.getLogger(__name__)


class Origin(enum.StrEnum):
    SHIPPED = "shipped"
    #: A drop-in that adds a playbook of a new name.
    DROPIN = "drop-in"
    #: A drop-in that replaces the shipped playbook of the same name.
    OVERRIDE = "override"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    path: Path
    origin: Origin
    #: The shipped file this entry replaces (``Origin.OVERRIDE`` only).
    overrides: Path | None
    playbook: Playbook


def load_catalog(settings: Settings) -> list[Playbook]:
    """The playbooks repairs choose from, in ranking-tie order. Raises like :func:`catalog_entries`."""
    return [entry.playbook for entry in catalog_entries(settings)]


def catalog_entries(settings: Settings) -> list[CatalogEntry]:
    """Every playbook of the catalog with the file it comes from and its origin.

    Raises:
        PlaybookError: the shipped directory is missing; the drop-in directory is not a directory or
            is writable by other users; a file is invalid; two files of one directory define the same
            playbook; or a strategy name is defined twice in the final catalog. The message names
            the file and the key path.
    """
    entries = [CatalogEntry(p.name, Path(p.source), Origin.SHIPPED, None, p)
               for p in load_playbooks(settings.playbooks_dir)]
    index = {entry.name: i for i, entry in enumerate(entries)}
    for playbook in _dropins(settings.playbooks_dropin_dir, shipped=settings.playbooks_dir):
        path = Path(playbook.source)
        if playbook.name in index:
            replaced = entries[index[playbook.name]]
            log.info("playbook %s from %s overrides %s", playbook.name, path, replaced.path)
            entries[index[playbook.name]] = CatalogEntry(playbook.name, path, Origin.OVERRIDE,
                                                         replaced.path, playbook)
        else:
            index[playbook.name] = len(entries)
            entries.append(CatalogEntry(playbook.name, path, Origin.DROPIN, None, playbook))
    _check_unique_strategies(entries)
    return entries


def _dropins(directory: Path, *, shipped: Path) -> list[Playbook]:
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        if not directory.is_symlink():
            return []
        # A link to nowhere was configured on purpose: its playbooks must not vanish silently.
        raise PlaybookError(f"{directory}: playbook drop-in directory is a symbolic link to nowhere",
                            file=str(directory), remedy=f"fix or remove the link {directory}") from None
    except OSError as exc:  # a symlink loop, a component that is not a directory, no permission
        raise PlaybookError(f"{directory}: cannot read the playbook drop-in directory: {exc.strerror}",
                            file=str(directory)) from exc
    if not stat.S_ISDIR(mode):
        raise PlaybookError(f"{directory}: playbook drop-in directory is not a directory",
                            file=str(directory))
    if directory.resolve() == shipped.resolve():
        return []  # configured as its own drop-in directory: the files are loaded once, as shipped
    # Playbooks define commands that end up applied to the host: refuse a place anyone can write to.
    for path in [directory, *sorted(directory.glob("*.yaml"))]:
        try:
            mode = path.stat().st_mode
        except OSError as exc:  # a dangling or looping symlink among the drop-ins
            raise PlaybookError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from exc
        if mode & stat.S_IWOTH:
            raise PlaybookError(f"{path}: writable by every user; refusing to load playbooks from it",
                                file=str(path), remedy=f"chmod o-w {path}")
    for stray in sorted(directory.glob("*.yml")):
        log.warning("%s: ignored; playbook drop-ins must end in .yaml", stray)
    return load_playbooks(directory)


def _check_unique_strategies(entries: list[CatalogEntry]) -> None:
    # The shipped files were checked against each other by load_playbooks: blame the drop-in.
    defined = {strategy.name: entry.path for entry in entries if entry.origin is Origin.SHIPPED
               for strategy in entry.playbook.strategies}
    for entry in (e for e in entries if e.origin is not Origin.SHIPPED):
        for position, strategy in enumerate(entry.playbook.strategies):
            if strategy.name in defined:
                raise PlaybookError(
                    f"{entry.path}: strategies[{position}].name: strategy {strategy.name!r} is already "
                    f"defined in {defined[strategy.name]}", file=str(entry.path),
                    remedy="strategy names key the success history; give this one a new name",
                )
            defined[strategy.name] = entry.path
