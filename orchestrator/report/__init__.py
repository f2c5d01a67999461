"""The human report of a session (``report.md``), rendered from the session's JSON evidence files."""
