"""Start gating: ``vmrepair gate UNIT`` runs as the unit's ``ExecStartPre=`` and refuses the start when
the vital checks of the component owning UNIT that can run before it starts fail.

- :mod:`.checks`: which probes qualify (by family) and the verdict on their results;
- :mod:`.decide`: the deadline, ``gate.on_error`` and the audit records around one evaluation;
- :mod:`.dropin`: the ``UNIT.d/50-vmrepair-gate.conf`` drop-in ``vmrepair watch gate install`` writes.
"""

from __future__ import annotations

from orchestrator.gate.checks import PRESTART_PREFIXES, evaluate, owner_of, prestart_probes
from orchestrator.gate.decide import Verdict, decide, record_verdict
from orchestrator.gate.dropin import DROPIN_NAME, dropin_path, install_gate, remove_gate, render_dropin

__all__ = [
    "DROPIN_NAME",
    "PRESTART_PREFIXES",
    "Verdict",
    "decide",
    "dropin_path",
    "evaluate",
    "install_gate",
    "owner_of",
    "prestart_probes",
    "record_verdict",
    "remove_gate",
    "render_dropin",
]
