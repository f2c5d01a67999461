"""Where systemd reads unit files and drop-ins: a change below these needs a ``daemon-reload``.

Lexical on purpose (the paths name files on a target, not on this machine); callers pass canonical
absolute paths.
"""

from __future__ import annotations

UNIT_FILE_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)


def is_unit_file(path: str) -> bool:
    """True when ``path`` is a unit file or drop-in systemd reads (``/etc/systemd/systemx`` is not)."""
    return any(path.startswith(directory + "/") for directory in UNIT_FILE_DIRS)
