"""Apply a fix package to the target, crash-safely, and roll it back when it does not hold.

- :mod:`.preflight`  the target must still match the capture (read-only)
- :mod:`.backup`     verified backup of exactly the touched files and the units' prior states
- :mod:`.journal`    ``intent.json`` / ``progress.json``: what was about to happen, how far it got
- :mod:`.units`      systemctl argv for unit actions and their restoration
- :mod:`.restore`    :func:`rollback_from_backup`: put files and units back, then verify the files
- :mod:`.runner`     :func:`apply_package`: preflight -> backup -> journal -> ops -> validate | restore
- :mod:`.result`     :class:`ApplyResult`
"""

from __future__ import annotations

from orchestrator.apply.restore import rollback_from_backup
from orchestrator.apply.result import ApplyResult, ApplyStatus
from orchestrator.apply.runner import apply_package

__all__ = ["ApplyResult", "ApplyStatus", "apply_package", "rollback_from_backup"]
