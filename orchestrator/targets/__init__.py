"""Targets: the host to repair, named `local`, `ssh://[user@]host[:port]` or `vm:NAME`."""
