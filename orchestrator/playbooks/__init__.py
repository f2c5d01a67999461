"""Playbooks: which issues they apply to, how to diagnose them, and ranked strategies to repair them.

Files live in the top-level ``playbooks/`` directory (YAML, with a shipped JSON schema for editors);
:func:`~orchestrator.playbooks.loader.load_playbooks` validates and converts them into the plain objects
of :mod:`orchestrator.playbooks.model`.
"""

from __future__ import annotations

from orchestrator.playbooks.loader import export_schema, load_playbook, load_playbooks
from orchestrator.playbooks.model import UNKNOWN_CAUSE, Playbook, Rule, Step, Strategy

__all__ = ["UNKNOWN_CAUSE", "Playbook", "Rule", "Step", "Strategy", "export_schema", "load_playbook",
           "load_playbooks"]
