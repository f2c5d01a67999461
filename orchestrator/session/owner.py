"""Which process owns a running session, and whether it still runs.

A session records its owner when the run starts (``session.json`` ``owner``): the pid, the host's boot
id and the process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22). A pid alone
is not an identity: after a reboot, or once the kernel has wrapped its pid counter, another process may
carry it. So an owner is alive only when the boot is the same, the pid runs, and — when both are
known — it is the same process (same start time). A session from a previous boot is always dead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.fsutil import pid_alive

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    pid: int
    boot_id: str
    #: Start time of the process in clock ticks since boot; 0 when /proc could not tell.
    start_ticks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "boot_id": self.boot_id, "start_ticks": self.start_ticks}

    @classmethod
    def from_meta(cls, data: object) -> Owner | None:
        """The owner recorded in session.json (untrusted: any malformed value reads as unknown)."""
        if not isinstance(data, dict):
            return None
        pid, boot, ticks = data.get("pid"), data.get("boot_id"), data.get("start_ticks", 0)
        if not (isinstance(pid, int) and isinstance(boot, str) and isinstance(ticks, int)):
            return None
        return cls(pid, boot, ticks)


def current_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This host's boot id, or "" when it cannot be read (then no boot comparison is made)."""
    try:
        return path.read_text(encoding="ascii").strip()[:64]
    except (OSError, UnicodeDecodeError):
        return ""


def start_ticks(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot), or 0 when unknown."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return 0
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return int(fields[19])   # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return 0


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(pid, current_boot_id(), start_ticks(pid))


def is_alive(owner: Owner, *, boot_id: str | None = None) -> bool:
    """Whether ``owner`` still runs on this boot (``boot_id``: the current one, read when None)."""
    boot = current_boot_id() if boot_id is None else boot_id
    if boot and owner.boot_id and owner.boot_id != boot:
        return False
    if not pid_alive(owner.pid):
        return False
    if owner.start_ticks:
        ticks = start_ticks(owner.pid)
        if ticks and ticks != owner.start_ticks:
            return False   # the pid was reused by another process
    return True
