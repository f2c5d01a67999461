"""``watch.ignore_paths``: paths no component watches, whatever discovery or the config says.

An entry covers itself and everything below it (``/etc/nginx/snippets`` covers
``/etc/nginx/snippets/ssl.conf``, not ``/etc/nginx/snippets.old``). After discovery and the config are
merged, :func:`strip_paths` drops every covered path from a component's path lists, so no probe is
planned on it and no capture takes it. Probes that look *below* a component's paths (the symlinks of a
config directory, ``dpkg --verify`` of its packages, the modes recorded in the baseline) drop what
they find under a covered path with :func:`covering` and say so in their evidence. Entries are
validated when the config loads (:data:`orchestrator.config.values.IgnoredPath`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from orchestrator.model import Component


def covering(path: str, ignored: Iterable[str]) -> str | None:
    """The entry of ``ignored`` that covers ``path`` (itself or a directory above it), if any."""
    for entry in ignored:
        if path == entry or path.startswith(entry.rstrip("/") + "/"):
            return entry
    return None


def keep(paths: Sequence[str], ignored: Sequence[str]) -> tuple[str, ...]:
    return tuple(p for p in paths if covering(p, ignored) is None)


def strip_paths(component: Component, ignored: Sequence[str]) -> Component:
    """``component`` without the paths ``ignored`` covers (config, unit, data, log, writable, JSONL
    log and fstab paths alike)."""
    if not ignored:
        return component
    return replace(
        component,
        config_paths=keep(component.config_paths, ignored), unit_paths=keep(component.unit_paths, ignored),
        data_paths=keep(component.data_paths, ignored), log_paths=keep(component.log_paths, ignored),
        writable_paths=keep(component.writable_paths, ignored),
        jsonl_logs=keep(component.jsonl_logs, ignored), fstab=keep(component.fstab, ignored),
    )
