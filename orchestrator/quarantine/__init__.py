"""Quarantine: isolate a component that keeps failing (units stopped and disabled, its config and unit
files moved aside with a manifest), list what is isolated, and release it exactly as it was.

:mod:`.isolate` and :mod:`.release` hold the procedures and their crash-safety argument,
:mod:`.manifest` the record kept beside the moved files, :mod:`.store` the layout on the target and
:mod:`.logbook` the human-readable QUARANTINE.md.
"""

from __future__ import annotations

from orchestrator.quarantine.isolate import quarantine_component
from orchestrator.quarantine.manifest import PathRecord, QuarantineRecord, Status, UnitRecord
from orchestrator.quarantine.release import ReleaseResult, release
from orchestrator.quarantine.store import DEFAULT_QUARANTINE_ROOT, LOG_NAME, list_quarantined

__all__ = ["DEFAULT_QUARANTINE_ROOT", "LOG_NAME", "PathRecord", "QuarantineRecord", "ReleaseResult",
           "Status", "UnitRecord", "list_quarantined", "quarantine_component", "release"]
