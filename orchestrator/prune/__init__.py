"""Retention: pruning old sessions, backups and fix packages from the state directory.

:mod:`~orchestrator.prune.decide` holds the rules (pure: what is kept and why), :mod:`.scan` reads the
state directory and the state store, :mod:`.run` removes and audits. `vmrepair prune` and the daemon's
prune job (:mod:`orchestrator.daemon.prune_job`) call :func:`~orchestrator.prune.run.prune_state`.
"""
