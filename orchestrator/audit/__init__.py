"""The audit trail.

- :mod:`.sink`: the :class:`~.sink.AuditSink` interface every stage, the daemon and the self-healing
  code log through, with null and in-memory sinks;
- :mod:`.log`: :class:`~.log.AuditLog`, the append-only hash-chained JSON-lines file behind it;
- :mod:`.record`: the record format (keys, escaping, caps, hashing);
- :mod:`.chain`: following the hash chain and acknowledging where it broke.

Verifying and repairing the file is :mod:`orchestrator.jsonl` (``vmrepair log verify|repair``).
"""
