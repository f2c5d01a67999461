"""One path as the backup recorded it before apply (its own module: the node restore in
:mod:`.fs_ops` needs it and :mod:`.backup` needs fs_ops)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BackupEntry:
    path: str
    existed: bool
    #: ``file``: restorable (content in files/<sha256> when it existed); ``symlink``/``dir``: restorable
    #: from the metadata (and ``link``); ``rotated_log``: metadata only; ``file_meta``: a file whose mode
    #: and owner alone a ``set_owner_mode`` changes, restorable from the metadata (``sha256`` says
    #: what it held, its content is not kept: ``/etc/shadow``'s hashes never leave the target).
    kind: Literal["file", "rotated_log", "symlink", "dir", "file_meta"] = "file"
    sha256: str | None = None
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    link: str | None = None
