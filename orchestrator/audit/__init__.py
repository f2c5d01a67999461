"""Audit trail: :mod:`.sink` (the interface) and :mod:`.log` (the hash-chained JSON-lines file)."""
