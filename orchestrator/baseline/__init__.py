"""Baselines: a known-good copy of every watched component's files, recorded while the target is healthy.

Repairs compare the broken state with it and can restore files from it. Layout, per target::

    <state>/baselines/<target-slug>/
        latest.json              {"baseline": "<name>"}: the newest *complete* baseline
        <UTC stamp>/             0700, e.g. 20260101T120000Z
            files.tar            the agent's pack of every component's paths
            manifest.json        metadata of every path (FileEntry), missing paths, placeholders
            packages.json        installed versions of the components' packages (null: not installed)
            units.json           ActiveState / UnitFileState of every watched unit
            baseline.json        target, created_at, counts, sha256 of files.tar: written LAST

``baseline.json`` marks a directory complete, and ``latest.json`` is only replaced (atomically) after
it: an interrupted recording leaves ``latest`` at the previous complete baseline. At most
:data:`~orchestrator.baseline.layout.KEEP` complete baselines are kept per target.
"""

from __future__ import annotations

from orchestrator.baseline.record import BaselineAgent, BaselineInfo, record_baseline
from orchestrator.baseline.store import Baseline, load_latest_baseline

__all__ = ["Baseline", "BaselineAgent", "BaselineInfo", "load_latest_baseline", "record_baseline"]
