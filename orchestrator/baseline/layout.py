"""Where baselines live on disk: names, the ``latest.json`` pointer, and retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError, StateError
from orchestrator.fsutil import atomic_write, ensure_private_dir

log = logging.getLogger(__name__)

FILES_TAR = "files.tar"
MANIFEST_JSON = "manifest.json"
PACKAGES_JSON = "packages.json"
UNITS_JSON = "units.json"
#: The components watched when the baseline was recorded (absent from baselines of older releases).
COMPONENTS_JSON = "components.json"
#: Written last: its presence marks a baseline directory complete.
BASELINE_JSON = "baseline.json"
LATEST_JSON = "latest.json"
#: Complete baselines kept per target; older ones are deleted once a new one is complete.
KEEP = 5
FORMAT = 1
REMEDY = "re-run `vmrepair baseline --target TARGET` while the target is healthy"

_SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
#: UTC stamp, plus "-N" when several baselines start within the same second.
_NAME_RE = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)(?:-(?P<seq>[0-9]{1,3}))?$")
_MAX_SAME_SECOND = 99


@dataclass(frozen=True)
class BaselineDir:
    name: str
    path: Path

    @property
    def is_complete(self) -> bool:
        return (self.path / BASELINE_JSON).is_file()

    @property
    def sort_key(self) -> tuple[str, int]:
        match = _NAME_RE.match(self.name)
        assert match is not None  # noqa: S101 - only names matching _NAME_RE are listed
        return match["stamp"], int(match["seq"] or 0)


def sha256_file(path: Path) -> str:
    """Raises: OSError: the file cannot be read (callers translate it into StateError)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, data: object) -> None:
    """Raises: StateError: the write failed (the file keeps its old content, if any)."""
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def target_dir(baselines_dir: Path, target_slug: str) -> Path:
    """Raises: ConfigError: the slug is not a single safe path component."""
    if not _SLUG_RE.match(target_slug) or ".." in target_slug:
        raise ConfigError(f"invalid target slug {target_slug!r} for a baseline directory")
    return baselines_dir / target_slug


def new_baseline_dir(directory: Path, created: dt.datetime) -> BaselineDir:
    """Create a fresh, private baseline directory named after ``created`` (UTC).

    Raises:
        StateError: it cannot be created.
    """
    ensure_private_dir(directory)
    stamp = created.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for seq in range(_MAX_SAME_SECOND + 1):
        name = stamp if seq == 0 else f"{stamp}-{seq}"
        try:
            (directory / name).mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StateError(f"cannot create {directory / name}: {exc.strerror or exc}",
                             remedy="check free space and permissions of the state directory") from exc
        return BaselineDir(name, ensure_private_dir(directory / name))
    raise StateError(f"{directory}: too many baselines started at {stamp}")


def list_baselines(directory: Path) -> list[BaselineDir]:
    """Baseline directories of one target, oldest first (complete or not)."""
    if not directory.is_dir():
        return []
    found = [BaselineDir(p.name, p) for p in directory.iterdir()
             if _NAME_RE.match(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda d: d.sort_key)


def set_latest(directory: Path, name: str) -> None:
    """Raises: StateError: the pointer cannot be written (the old one stays)."""
    write_json(directory / LATEST_JSON, {"baseline": name})


def read_latest(directory: Path) -> BaselineDir | None:
    """The baseline ``latest.json`` points at; ``None`` when no baseline was ever completed.

    Raises:
        StateError: the pointer is unreadable or points at something that is not a complete baseline.
    """
    pointer = directory / LATEST_JSON
    try:
        raw = pointer.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {pointer}: {exc.strerror or exc}", remedy=REMEDY) from exc
    try:
        name = json.loads(raw)["baseline"]
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"{pointer} is corrupt", remedy=REMEDY) from exc
    # Our own file, but it names a directory: never let it point outside the target's directory.
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StateError(f"{pointer} names an invalid baseline {name!r}", remedy=REMEDY)
    found = BaselineDir(name, directory / name)
    if not found.is_complete:
        raise StateError(f"{pointer} points at {name}, which is missing or incomplete", remedy=REMEDY)
    return found


def prune(directory: Path, newest: BaselineDir, keep: int = KEEP) -> list[str]:
    """Delete complete baselines beyond the ``keep`` newest, and incomplete ones older than ``newest``
    (left by interrupted recordings). Directories newer than ``newest`` are never touched: another
    recording may be writing them. Failures are logged, not raised: the new baseline is already safe.
    """
    keep = max(1, keep)
    older = [d for d in list_baselines(directory) if d.sort_key <= newest.sort_key]
    complete = [d for d in older if d.is_complete]
    doomed = complete[:-keep] + [d for d in older if not d.is_complete and d != newest]
    removed = []
    for entry in doomed:
        try:
            shutil.rmtree(entry.path)
        except OSError as exc:
            log.warning("cannot remove old baseline %s: %s", entry.path, exc)
        else:
            removed.append(entry.name)
    return removed
