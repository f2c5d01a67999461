"""Reading one file's captured content back out of the capture archive (``files.tar``), for the diffs a
fix package shows (what the target had, against what the repair left in the VM).

The archive was packed on the target, so it is read as untrusted: only a regular-file member whose
name is exactly the path is read, never extracted to disk, never more than ``max_bytes``; anything
odd (missing, a link, too big, a damaged archive) reads as ``None`` — the package then simply has no
diff for that path, which is what it had before.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: The largest original a diff is made from (diffs are capped for the report anyway).
MAX_DIFF_SOURCE = 1024 * 1024


def captured_reader(tar: Path, max_bytes: int = MAX_DIFF_SOURCE) -> Callable[[str], bytes | None]:
    """A reader of ``path``'s content as captured in ``tar`` (None when it cannot say)."""

    def read(path: str) -> bytes | None:
        name = path.lstrip("/")
        try:
            with tarfile.open(tar, mode="r:") as archive:
                member = archive.getmember(name)
                if not member.isreg() or member.size > max_bytes:
                    return None
                handle = archive.extractfile(member)
                return None if handle is None else handle.read(max_bytes + 1)[:max_bytes]
        except (KeyError, OSError, tarfile.TarError) as exc:
            log.debug("no captured content of %s in %s: %s", path, tar, exc)
            return None

    return read
