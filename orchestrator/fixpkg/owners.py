"""Map file owners seen in the troubleshooting VM back to the target's numeric ids.

Captured files are unpacked into the VM by owner *name* (as tar does when run as root), so a user that
is uid 101 on the target may be uid 104 in the VM. The VM's numbers mean nothing on the target; the
names do, and the capture tells which target ids those names have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.agent.api import FileEntry
from orchestrator.errors import FixPackageError


class OwnerMap:
    """Owner/group name -> target uid/gid, learnt from the manifest captured on the target, then from
    the target's own account database (``users``/``groups``: name -> id, read from its /etc/passwd and
    /etc/group) for names that own no captured file: a directory the target lost entirely (a removed
    state directory) has no captured entry to learn its owner's id from."""

    def __init__(self, target_entries: Iterable[FileEntry], *, users: Mapping[str, int] | None = None,
                 groups: Mapping[str, int] | None = None) -> None:
        # root is uid/gid 0 on every Linux host, captured or not.
        self._uids: dict[str, int] = {"root": 0}
        self._gids: dict[str, int] = {"root": 0}
        for entry in target_entries:
            self._uids.setdefault(entry.owner, entry.uid)
            self._gids.setdefault(entry.group, entry.gid)
        for name, uid in (users or {}).items():
            self._uids.setdefault(name, uid)
        for name, gid in (groups or {}).items():
            self._gids.setdefault(name, gid)

    def target_ids(self, vm_entry: FileEntry) -> tuple[int, int]:
        """The target's (uid, gid) for the owner and group of a file in the VM.

        Raises:
            FixPackageError: the owner or group owns no captured file and is not in the target's
                account database, so its id on the target is unknown (writing the VM's number could
                hand the file to another user).
        """
        uid = self._uids.get(vm_entry.owner)
        gid = self._gids.get(vm_entry.group)
        if uid is None or gid is None:
            unknown = vm_entry.owner if uid is None else vm_entry.group
            raise FixPackageError(
                f"{vm_entry.path}: owner/group {unknown!r} of the file in the VM owns no captured file"
                " and is not an account of the target, so its id on the target is unknown"
            )
        return uid, gid
