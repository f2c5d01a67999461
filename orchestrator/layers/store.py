"""Where host layers live: ``<image store>/layers/<key>/``.

A layer directory holds a warm state (:mod:`orchestrator.hypervisor.warm`: ``warm/base.qcow2``, the
build VM's overlay on the template base with the packages installed, frozen read-only; ``warm/state.sav``
its memory) and ``layer.json``, written last. A build happens in ``.build-<key>-<pid>/`` and is renamed
into place complete, so a build killed half way never looks built; its leftovers are removed by the next
build of that key or by ``vmrepair image layers --prune``. ``.lock-<key>`` serializes two runs that want
the same layer: the second waits and then uses the first one's build.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import LayerError
from orchestrator.fsutil import atomic_write, ensure_private_dir, fsync_dir, pid_alive
from orchestrator.hypervisor.warm import WarmState, load_warm_state

LAYERS_DIR = "layers"
MANIFEST = "layer.json"
USED = "used"
FORMAT = 1


@dataclass(frozen=True)
class LayerManifest:
    key: str
    template: str
    recipe_hash: str
    vm_name: str
    #: ``name:arch=version`` of every package the layer installed, and where its .deb came from.
    packages: dict[str, str]
    deb_sha256: dict[str, str]
    built_at: str
    build_seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, *, source: Path) -> LayerManifest:
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise LayerError(f"corrupt layer manifest {source}: {exc}", step="store",
                             remedy="`vmrepair image layers --prune` removes it; a run rebuilds it") from exc


@dataclass(frozen=True)
class BuiltLayer:
    directory: Path
    manifest: LayerManifest
    warm: WarmState

    @property
    def key(self) -> str:
        return self.manifest.key

    @property
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.warm.directory.iterdir() if p.is_file())

    @property
    def last_used(self) -> float:
        try:
            return (self.directory / USED).stat().st_mtime
        except OSError:
            return (self.directory / MANIFEST).stat().st_mtime


class LayerStore:
    """The layers of one image store."""

    def __init__(self, image_store: Path) -> None:
        self.root = image_store / LAYERS_DIR

    def directory(self, key: str) -> Path:
        if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise LayerError(f"invalid layer key {key!r}", step="store")
        return self.root / key

    def get(self, key: str, recipe_hash: str | None = None) -> BuiltLayer | None:
        """The complete layer ``key`` (of that template build, when given), or None."""
        directory = self.directory(key)
        try:
            raw = (directory / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LayerError(f"cannot read {directory / MANIFEST}: {exc.strerror}", step="store") from exc
        manifest = LayerManifest.from_json(raw, source=directory / MANIFEST)
        if manifest.format != FORMAT:
            return None  # written by another version of vmrepair: rebuilt, never misread
        if recipe_hash is not None and manifest.recipe_hash != recipe_hash:
            return None
        warm = load_warm_state(directory, manifest.recipe_hash)
        if warm is None or warm.vm_name != manifest.vm_name:
            return None
        return BuiltLayer(directory, manifest, warm)

    def touch(self, layer: BuiltLayer) -> None:
        """Remember the use (``--prune --unused-days`` goes by it)."""
        with contextlib.suppress(OSError):
            (layer.directory / USED).touch()

    def list(self) -> list[BuiltLayer]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            with contextlib.suppress(LayerError):
                layer = self.get(entry.name)
                if layer is not None:
                    found.append(layer)
        return found

    def leftovers(self) -> builtins.list[Path]:
        """Partial builds whose builder is gone, and directories that are not complete layers."""
        if not self.root.is_dir():
            return []
        stale = []
        complete = {layer.directory.name for layer in self.list()}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".lock-") or entry.name in complete:
                continue
            if entry.name.startswith(".build-") and _builder_alive(entry.name):
                continue
            stale.append(entry)
        return stale

    def work_dir(self, key: str) -> Path:
        ensure_private_dir(self.root, mode=0o711)
        work = self.root / f".build-{key[:16]}-{os.getpid()}"
        remove_tree(work, self.root)
        return ensure_private_dir(work)

    def publish(self, work: Path, manifest: LayerManifest) -> BuiltLayer:
        atomic_write(work / MANIFEST, manifest.to_json(), mode=0o644)
        target = self.directory(manifest.key)
        if target.exists():
            remove_tree(target, self.root)   # an incomplete one (get() said None): replaced
        work.rename(target)
        fsync_dir(self.root)
        built = self.get(manifest.key)
        if built is None:
            raise LayerError(f"layer {manifest.key[:12]} was published but does not load", step="publish")
        return built

    def remove(self, path: Path) -> None:
        remove_tree(path, self.root)

    @contextlib.contextmanager
    def lock(self, key: str, *, timeout_s: float) -> Iterator[None]:
        """Exclusive right to build ``key``; waits for another builder (up to ``timeout_s``)."""
        ensure_private_dir(self.root, mode=0o711)
        path = self.root / f".lock-{key[:16]}"
        with path.open("a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise LayerError(
                            f"layer {key[:12]} is being built by another run for more than {timeout_s:.0f} s",
                            step="lock", remedy="wait for that run, or stop it and retry") from exc
                    time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)




def remove_tree(path: Path, root: Path) -> None:
    """Delete a layer or build directory, never anything outside ``root`` and never through a link."""
    if not path.exists() and not path.is_symlink():
        return
    if path.parent != root or path.is_symlink():
        raise LayerError(f"refusing to delete unexpected path {path}", step="store")
    for child in path.rglob("*"):
        # The frozen disk is read-only; the directory is ours (0700): make it deletable.
        with contextlib.suppress(OSError):
            if child.is_file() and not child.is_symlink():
                child.chmod(0o600)
    shutil.rmtree(path)


def _builder_alive(name: str) -> bool:
    pid = name.rsplit("-", 1)[-1]
    return pid.isdigit() and pid_alive(int(pid))
