"""The image store: one directory per template holding a complete build and its manifest.

A template counts as built only when ``<store>/<template>/manifest.json`` exists and parses; the builder
writes that file last, inside a private build directory that is renamed into place in one step, so an
interrupted build never looks built.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ImageError, ImageNotBuiltError
from orchestrator.fsutil import atomic_write

MANIFEST = "manifest.json"
BASE_DISK = "base.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
BUILD_LOG = "build.log"


@dataclass(frozen=True)
class Artifact:
    sha256: str
    size: int


@dataclass(frozen=True)
class ImageManifest:
    """What a complete build contains; written last, read by everything that boots the image."""

    template: str
    recipe_hash: str
    suite: str
    built_at: str
    build_seconds: float
    kernel_version: str
    kernel_cmdline: str
    memory_mib: int
    vcpus: int
    host_key: str
    host_key_fingerprint: str
    client_key_fingerprint: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    format: int = 1

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, *, source: Path) -> ImageManifest:
        try:
            data: dict[str, Any] = json.loads(raw)
            data["artifacts"] = {k: Artifact(**v) for k, v in data["artifacts"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ImageError(
                f"corrupt image manifest {source}: {exc}",
                remedy="rebuild the template with `vmrepair image build --force`",
            ) from exc


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    """A complete build on disk."""

    directory: Path
    manifest: ImageManifest

    @property
    def base_disk(self) -> Path:
        return self.directory / BASE_DISK

    @property
    def kernel(self) -> Path:
        return self.directory / KERNEL

    @property
    def initrd(self) -> Path:
        return self.directory / INITRD

    def verify(self) -> list[str]:
        """Re-hash every artifact; return the problems (empty when intact)."""
        problems = []
        for name, art in self.manifest.artifacts.items():
            path = self.directory / name
            if not path.is_file():
                problems.append(f"{name}: missing")
            elif path.stat().st_size != art.size:
                problems.append(f"{name}: size {path.stat().st_size} != {art.size}")
            elif sha256_file(path) != art.sha256:
                problems.append(f"{name}: sha256 mismatch")
        return problems


class ImageStore:
    """Directory layout of built templates under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def image_dir(self, template: str) -> Path:
        return self.root / template

    def get(self, template: str) -> BuiltImage | None:
        """The complete build of ``template``, or None when there is none."""
        directory = self.image_dir(template)
        manifest_path = directory / MANIFEST
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ImageError(f"cannot read {manifest_path}: {exc.strerror}") from exc
        return BuiltImage(directory, ImageManifest.from_json(raw, source=manifest_path))

    def require(self, template: str) -> BuiltImage:
        """Like :meth:`get` but a missing build raises.

        Raises:
            ImageNotBuiltError: with the command that builds it.
        """
        built = self.get(template)
        if built is None:
            raise ImageNotBuiltError(
                f"template {template!r} is not built (no {self.image_dir(template) / MANIFEST})",
                remedy=f"run `vmrepair image build {template}` (or `make setup`)",
            )
        return built

    def list(self) -> list[BuiltImage]:
        if not self.root.is_dir():
            return []
        images = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            built = self.get(entry.name)
            if built is not None:
                images.append(built)
        return images

    @staticmethod
    def write_manifest(directory: Path, manifest: ImageManifest) -> None:
        atomic_write(directory / MANIFEST, manifest.to_json(), mode=0o644)
