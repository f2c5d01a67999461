"""Read a target's newest complete baseline back: manifest entries, facts, and file contents.

``files.tar`` is verified against the sha256 in ``baseline.json`` when the baseline is loaded. File
contents are read from it in memory, never extracted to disk, and only from regular-file members:
the tar was produced on the target, so its member types and names are not trusted.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.agent.api import FileEntry, FileType
from orchestrator.baseline import layout
from orchestrator.baseline.record import BaselineInfo
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from orchestrator.steps.paths import within_any

log = logging.getLogger(__name__)

_FILE_TYPES: dict[str, FileType] = {"file": "file", "dir": "dir", "symlink": "symlink", "other": "other"}
_MEMBER_KINDS = {tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "directory",
                 tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device", tarfile.FIFOTYPE: "fifo"}
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "path": str, "mode": int, "uid": int, "gid": int, "owner": str, "group": str, "size": int,
    "mtime": (int, float),
}


@dataclass(frozen=True)
class PlaceholderInfo:
    """A file that was too large to capture: only its size and hash are in the baseline."""

    path: str
    size: int
    sha256: str | None


def _key(path: str) -> str:
    # Tar member names come as "etc/x", "./etc/x" or "/etc/x"; manifest paths are absolute. A plain
    # normpath would keep a leading "//", hence the lstrip.
    return posixpath.normpath("/" + path.lstrip("/"))


class Baseline:
    """One complete, verified baseline of a target.

    Satisfies :class:`orchestrator.steps.context.BaselineReader` (``read``, ``entry``, ``paths_under``)
    and its ``SymlinkBaseline`` extra (``link``). Paths are absolute; they are normalised on lookup.
    """

    def __init__(
        self, info: BaselineInfo, *, entries: dict[str, FileEntry],
        placeholders: dict[str, PlaceholderInfo], missing: tuple[str, ...],
        packages: dict[str, str | None], units: dict[str, Any], roots: tuple[str, ...] = (),
    ) -> None:
        self.info = info
        #: The paths the baseline watched (its components' paths when it was recorded), normalised.
        self.roots = tuple(_key(r) for r in roots)
        self._entries = entries
        self.placeholders = placeholders
        #: Watched paths that did not exist when the baseline was recorded.
        self.missing = missing
        #: Package name → installed version, None when it was not installed.
        self.packages = packages
        #: Unit → {"component", "ActiveState", "UnitFileState", "unavailable"}.
        self.units = units
        #: Tar members by normalised path, read on first use (a baseline may never be read from).
        self._index: dict[str, tarfile.TarInfo] | None = None

    @property
    def tar_path(self) -> Path:
        return self.info.directory / layout.FILES_TAR

    def by_path(self) -> dict[str, FileEntry]:
        """Manifest entries keyed by absolute, normalised path."""
        return dict(self._entries)

    def manifest_entry(self, path: str) -> FileEntry | None:
        return self._entries.get(_key(path))

    def entry(self, path: str) -> tuple[int, int, int] | None:
        """``(mode, uid, gid)`` of any path in the manifest; None if absent (repair's BaselineReader)."""
        found = self._entries.get(_key(path))
        return None if found is None else (found.mode, found.uid, found.gid)

    def link(self, path: str) -> str | None:
        """Target of a symlink in the baseline; None when ``path`` is not a symlink there."""
        found = self._entries.get(_key(path))
        return found.link if found is not None and found.type == "symlink" else None

    def paths_under(self, prefix: str) -> list[str]:
        """Every manifest path equal to ``prefix`` or below it, sorted."""
        root = _key(prefix)
        below = root.rstrip("/") + "/"
        return sorted(p for p in self._entries if p == root or p.startswith(below))

    def covers(self, path: str) -> bool:
        """True when ``path`` is a watched path of this baseline or lies below one."""
        return within_any(_key(path), self.roots)

    def read(self, path: str) -> bytes | None:
        """Baseline content of the regular file ``path``; None when the baseline holds none: not
        captured, kept only as a placeholder, or not a regular file. A tar member that is not a regular
        file (symlink, hard link, device) is refused, never followed, even where the manifest says the
        path is a regular file (then it is logged: the tar is inconsistent, or was tampered with on the
        target).

        Raises:
            StateError: files.tar cannot be read.
        """
        key = _key(path)
        if key in self.placeholders:
            return None
        member = self._members().get(key)
        if member is None:
            return None
        if not member.isreg():
            entry = self._entries.get(key)
            if entry is not None and entry.type == "file":
                kind = _MEMBER_KINDS.get(member.type, "special file")
                log.warning("baseline %s: %s is a regular file in the manifest but a %s in files.tar; "
                            "refusing it", self.info.name, key, kind)
            return None
        try:
            with tarfile.open(self.tar_path, "r:*") as archive:
                handle = archive.extractfile(member)
                return None if handle is None else handle.read()
        except (OSError, tarfile.TarError) as exc:
            raise StateError(f"baseline {self.info.name}: cannot read {key} from files.tar: {exc}",
                             remedy=layout.REMEDY) from exc

    def _members(self) -> dict[str, tarfile.TarInfo]:
        if self._index is not None:
            return self._index
        try:
            with tarfile.open(self.tar_path, "r:*") as archive:
                # Later members win, as when tar extracts an archive holding a name twice.
                self._index = {_key(m.name): m for m in archive.getmembers()}
        except (OSError, tarfile.TarError) as exc:
            raise StateError(f"baseline {self.info.name}: files.tar is unreadable: {exc}",
                             remedy=layout.REMEDY) from exc
        return self._index


def load_latest_baseline(settings: Settings, target_slug: str) -> Baseline | None:
    """The newest complete baseline of ``target_slug``; None when none was ever recorded.

    Raises:
        ConfigError: ``target_slug`` is not a safe directory name.
        StateError: the baseline is corrupt (files.tar does not match its sha256, unreadable JSON).
    """
    latest = layout.read_latest(layout.target_dir(settings.baselines_dir, target_slug))
    return None if latest is None else load_baseline(latest.path)


def usable_baseline(settings: Settings, target_slug: str) -> Baseline | None:
    """The newest baseline of ``target_slug`` as repair steps read it; None when there is none *or* it
    cannot be read: baseline strategies are then skipped rather than failing the run."""
    try:
        return load_latest_baseline(settings, target_slug)
    except StateError:
        return None


def load_baseline(directory: Path) -> Baseline:
    """Load and verify the complete baseline in ``directory``.

    Raises:
        StateError: a file is missing or corrupt, or files.tar does not match its recorded sha256.
    """
    try:
        info = _info(directory, _load_json(directory / layout.BASELINE_JSON))
    except (ValueError, KeyError, TypeError) as exc:
        raise _corrupt(directory, exc) from exc
    _verify_tar(info)
    try:
        manifest = _load_json(directory / layout.MANIFEST_JSON)
        entries = {_key(e.path): e for e in map(_entry, manifest["entries"])}
        placeholders = {_key(p["path"]): PlaceholderInfo(str(p["path"]), int(p["size"]), p["sha256"])
                        for p in manifest["placeholders"]}
        missing = tuple(str(p) for p in manifest["missing"])
        roots = tuple(str(p) for p in manifest["paths"])
        packages = _load_json(directory / layout.PACKAGES_JSON)["packages"]
        units = _load_json(directory / layout.UNITS_JSON)["units"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _corrupt(directory, exc) from exc
    return Baseline(info, entries=entries, placeholders=placeholders, missing=missing,
                    packages=packages, units=units, roots=roots)


def _corrupt(directory: Path, detail: object) -> StateError:
    return StateError(f"baseline {directory} is corrupt: {detail}", remedy=layout.REMEDY)


def _verify_tar(info: BaselineInfo) -> None:
    tar = info.directory / layout.FILES_TAR
    try:
        actual = layout.sha256_file(tar)
    except OSError as exc:
        raise _corrupt(info.directory, f"files.tar unreadable: {exc.strerror or exc}") from exc
    if actual != info.files_tar_sha256:
        raise _corrupt(info.directory, f"files.tar has sha256 {actual}, baseline.json recorded "
                       f"{info.files_tar_sha256}")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path.name} unreadable: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise TypeError(f"{path.name} is not a JSON object")
    return data


def _info(directory: Path, data: dict[str, Any]) -> BaselineInfo:
    tar = data["files_tar"]
    if data.get("format") != layout.FORMAT or not isinstance(tar["sha256"], str):
        raise ValueError("baseline.json has an unknown format")
    return BaselineInfo(str(data["target"]), directory.name, directory, str(data["created_at"]),
                        tar["sha256"], int(tar["bytes"]), {str(k): int(v) for k, v in data["counts"].items()})


def _entry(raw: Any) -> FileEntry:
    if not isinstance(raw, dict) or raw.get("type") not in _FILE_TYPES:
        raise ValueError(f"bad manifest entry {raw!r:.200}")
    for key, kind in _ENTRY_FIELDS.items():
        if not isinstance(raw.get(key), kind):
            raise TypeError(f"manifest entry field {key!r} is malformed in {raw!r:.200}")
    for key in ("sha256", "link"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise TypeError(f"manifest entry field {key!r} is malformed in {raw!r:.200}")
    return FileEntry(raw["path"], _FILE_TYPES[raw["type"]], raw["mode"], raw["uid"], raw["gid"],
                     raw["owner"], raw["group"], raw["size"], float(raw["mtime"]), raw.get("sha256"),
                     raw.get("link"))
