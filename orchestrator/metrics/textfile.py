"""``vmrepair.prom`` for node_exporter's textfile collector, rewritten atomically.

node_exporter reads every ``*.prom`` file of its directory at each scrape; a half-written file would
be a scrape error, so the file is replaced by rename (temp -> fsync -> rename -> fsync dir, through
:func:`~orchestrator.fsutil.atomic_write`; its temp name ends in ``.tmp``, which node_exporter
ignores). Mode 0644: node_exporter runs as its own user.

A missing directory means no node_exporter: nothing is written (a debug line says so), and the
directory is never created. :func:`write_textfile_quietly` never raises: metrics are a side channel,
and no command or repair fails because they could not be written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from orchestrator.errors import VmRepairError
from orchestrator.fsutil import atomic_write

log = logging.getLogger(__name__)

FILE_NAME = "vmrepair.prom"
FILE_MODE = 0o644


def write_textfile(registry: CollectorRegistry, directory: Path) -> Path | None:
    """Write ``directory/vmrepair.prom``; None when the directory does not exist.

    Raises:
        StateError: the file cannot be written (permissions, disk full); the old file stays.
    """
    if not directory.is_dir():
        log.debug("metrics textfile not written: %s does not exist (no node_exporter here)", directory)
        return None
    path = directory / FILE_NAME
    atomic_write(path, generate_latest(registry), mode=FILE_MODE)
    return path


def write_textfile_quietly(registry: CollectorRegistry, directory: Path) -> Path | None:
    """:func:`write_textfile`, logging instead of raising (see the module docstring)."""
    try:
        return write_textfile(registry, directory)
    except VmRepairError as exc:
        log.warning("metrics textfile not written: %s", exc.message)
    except Exception:  # a bug in a collector must not fail the command it follows
        log.exception("metrics textfile not written")
    return None
