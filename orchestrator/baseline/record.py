"""Record a baseline of a healthy target (the caller checks health first; this only records)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.agent.api import AgentApi, PackResult
from orchestrator.baseline import facts, layout
from orchestrator.components import record
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from orchestrator.fsutil import ensure_private_dir
from orchestrator.timestamps import format_timestamp
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


class BaselineAgent(AgentApi, Protocol):
    """The agent calls a recording needs: the AgentApi plus downloading the packed tar."""

    def fetch(self, remote: str, local: Path) -> None:
        """Download ``remote`` (a file the agent created) to ``local``.

        Raises:
            TransportError: the download failed.
        """
        ...


@dataclass(frozen=True)
class BaselineInfo:
    """What ``baseline.json`` says about one complete baseline."""

    target: str
    name: str
    directory: Path
    created_at: str
    files_tar_sha256: str
    files_tar_bytes: int
    counts: dict[str, int]

    def as_json(self) -> dict[str, object]:
        """The content of ``baseline.json``."""
        return {"format": layout.FORMAT, "target": self.target, "name": self.name,
                "created_at": self.created_at, "counts": dict(self.counts),
                "files_tar": {"sha256": self.files_tar_sha256, "bytes": self.files_tar_bytes}}

    def as_dict(self) -> dict[str, object]:
        return {**self.as_json(), "directory": str(self.directory)}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record_baseline(
    settings: Settings,
    target_slug: str,
    transport: Transport,
    agent: BaselineAgent,
    watch: WatchConfig,
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> BaselineInfo:
    """Pack every watched component's paths on the target and store them as its newest baseline.

    On any failure the partial directory is removed and ``latest`` keeps pointing at the previous
    complete baseline; after success, baselines beyond the newest ``layout.KEEP`` are deleted.

    Raises:
        ConfigError: ``target_slug`` is not a safe directory name.
        StateError: the baseline directory cannot be written.
        AgentError, TransportError: packing, downloading or querying the target failed.
    """
    root = layout.target_dir(settings.baselines_dir, target_slug)
    # Both levels: mkdir(parents=True) would leave the baselines dir with the umask's mode.
    ensure_private_dir(settings.baselines_dir)
    ensure_private_dir(root)
    created = clock()
    new = layout.new_baseline_dir(root, created)
    try:
        info = _record_into(new, settings=settings, target_slug=target_slug, transport=transport,
                            agent=agent, watch=watch, created=created)
        layout.set_latest(root, new.name)
    except BaseException:
        shutil.rmtree(new.path, ignore_errors=True)
        raise
    removed = layout.prune(root, new)
    if removed:
        log.info("removed old baselines of %s: %s", target_slug, ", ".join(removed))
    return info


def _record_into(
    new: layout.BaselineDir, *, settings: Settings, target_slug: str, transport: Transport,
    agent: BaselineAgent, watch: WatchConfig, created: dt.datetime,
) -> BaselineInfo:
    paths = sorted({p for comp in watch.components for p in comp.all_paths})
    # Covered roots are already gone from the components; what lies below a recorded directory goes.
    pack = agent.pack(paths, max_file_bytes=settings.repair.max_capture_file_bytes,
                      exclude=watch.ignore_paths)
    tar = new.path / layout.FILES_TAR
    agent.fetch(pack.remote_tar, tar)
    try:
        tar.chmod(0o600)
        tar_sha256, tar_bytes = layout.sha256_file(tar), tar.stat().st_size
    except OSError as exc:
        raise StateError(f"cannot read back {tar}: {exc.strerror or exc}") from exc
    layout.write_json(new.path / layout.MANIFEST_JSON, _manifest_json(pack, paths))
    packages = facts.query_packages(transport, [p for comp in watch.components for p in comp.packages])
    layout.write_json(new.path / layout.PACKAGES_JSON, packages)
    units = facts.query_units(transport, watch)
    layout.write_json(new.path / layout.UNITS_JSON, units)
    # What was watched, discovered components included: a service whose unit file is deleted later
    # is no longer discovered, and this record keeps it watched (orchestrator/discover/resolve.py).
    layout.write_json(new.path / layout.COMPONENTS_JSON,
                      {"components": [record.to_json(c) for c in watch.components]})
    counts = {
        "paths": len(paths), "entries": len(pack.manifest.entries),
        "missing": len(pack.manifest.missing), "placeholders": len(pack.placeholders),
        "packages": _count(packages, "packages"), "units": _count(units, "units"),
    }
    info = BaselineInfo(target_slug, new.name, new.path, format_timestamp(created),
                        tar_sha256, tar_bytes, counts)
    # Last: its presence is what makes this directory a complete baseline.
    layout.write_json(new.path / layout.BASELINE_JSON, info.as_json())
    return info


def _manifest_json(pack: PackResult, paths: list[str]) -> dict[str, object]:
    # Placeholders keep size and hash only: their head/tail bytes are untrusted content of files too
    # large to capture, of no use for a restore.
    return {
        "paths": paths,
        "entries": [dataclasses.asdict(e) for e in pack.manifest.entries],
        "missing": list(pack.manifest.missing),
        "placeholders": [{"path": p.path, "size": p.size, "sha256": p.sha256}
                         for p in pack.placeholders],
    }


def _count(data: dict[str, object], key: str) -> int:
    inner = data.get(key)
    return len(inner) if isinstance(inner, dict) else 0
