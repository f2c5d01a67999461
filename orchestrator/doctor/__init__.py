"""`vmrepair doctor`: the orchestrator's own boot diagnostics (vital and optional checks)."""
