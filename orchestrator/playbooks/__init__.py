"""Playbooks: which issues they apply to, how to diagnose them, and ranked strategies to repair them.

Files live in the top-level ``playbooks/`` directory (YAML, with a shipped JSON schema for editors);
:func:`~orchestrator.playbooks.loader.load_playbooks` validates and converts them into the plain objects
of :mod:`orchestrator.playbooks.model`.

Import from the modules, not from this package: the step kinds (:mod:`orchestrator.steps.kinds`) use
the playbook language (:mod:`.fields`, :mod:`.placeholders`) while the loader builds its step union from
them, so importing the loader here, on the way to :mod:`.fields`, would close an import loop.
"""
