"""sampleapp: a small in-house-style HTTP service standing in for a vital application.

It answers ``GET /health`` and ``GET /ready`` and records every request it serves as one
JSON object per line in an append-only interaction log. It refuses to start when that log
is corrupt, which makes it a realistic target for repair scenarios.
"""

__version__ = "1.4.2"
