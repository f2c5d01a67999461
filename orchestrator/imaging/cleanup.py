"""Removing build trees safely.

debootstrap bind-mounts the host's /dev (inside containers) and mounts /proc and /sys in the target while
it installs packages. A build killed mid-way leaves those mounts behind; a plain ``rmtree`` of the tree
would then delete the *host's* device nodes. Everything here unmounts first and refuses to delete while
any mount remains below the path.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from orchestrator.errors import ImageBuildError
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)
MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...); every other byte,
    # UTF-8 included, is written as is (so no "unicode_escape" codec: it would mangle non-ASCII).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_below(path: Path, *, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    root = os.path.realpath(path)
    found = []
    # Decoded like every other path (fsdecode), so it compares equal to realpath()'s result.
    for line in os.fsdecode(mountinfo.read_bytes()).splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == root or point.startswith(root + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def safe_rmtree(path: Path, runner: Transport, *, mountinfo: Path = MOUNTINFO) -> None:
    """Unmount everything below ``path``, then delete it.

    Raises:
        ImageBuildError: something stays mounted below ``path``; nothing is deleted.
    """
    if not path.exists():
        return
    for point in mounts_below(path, mountinfo=mountinfo):
        log.warning("unmounting leftover mount %s", point)
        runner.run(["umount", "--lazy", str(point)], timeout=60)
    remaining = mounts_below(path, mountinfo=mountinfo)
    if remaining:
        raise ImageBuildError(
            f"refusing to delete {path}: still mounted below it: {', '.join(map(str, remaining))}",
            step="cleanup",
            remedy=f"unmount them by hand (umount -l ...) and delete {path}",
        )
    shutil.rmtree(path)
