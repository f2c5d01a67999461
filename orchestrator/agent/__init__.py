"""The target-side agent: a stdlib-only Python script uploaded to a target (or guest) and run with a JSON
request on stdin, answering JSON on stdout. It does the file work that would otherwise need shell strings:
manifests with hashes, tar packing with size caps, crash-safe writes, JSONL checks and repairs, log
rotation. Its answers are untrusted input: the client validates them with size caps at the edge.

* :mod:`~orchestrator.agent.api`: the result dataclasses and the ``AgentApi`` protocol stages use.
* :mod:`~orchestrator.agent.client`: ``RemoteAgent``, the protocol over any Transport.
* :mod:`~orchestrator.agent.rpc`: ``AgentRpc``, its plumbing: upload, one request and its answer, batches.
* :mod:`~orchestrator.agent.requests`: answer caps, batchable operations, the script, printable text.
* :mod:`~orchestrator.agent.wire`: the strict models every answer is checked against.
* :mod:`~orchestrator.agent.errors`: ``AgentFailedError``, the agent's refusals with their ``code``.
* ``remote/vmrepair_agent.py``: the script itself (package data; importable for tests).
"""
