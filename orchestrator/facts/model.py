"""What a target is made of, as read from it: OS, architecture, apt sources, packages, unit states and
the files its services run that no package owns. Plain frozen values; every string came from the
target and was validated by :mod:`orchestrator.facts.parse` before it got here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class OsRelease:
    """``/etc/os-release``: ``id`` (``debian``), ``version_id`` (``12``), ``codename`` (``bookworm``)."""

    id: str
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""

    def __str__(self) -> str:
        return self.pretty_name or f"{self.id} {self.version_id}".strip()


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` line (or one URI and suite of a deb822 stanza)."""

    type: str            # deb | deb-src
    uri: str
    suite: str
    components: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class Package:
    name: str            # without the :arch suffix
    version: str
    arch: str
    #: dpkg's status abbreviation (``ii`` installed; ``iF``/``iU`` half-configured/unpacked ...).
    status: str
    held: bool = False

    @property
    def spec(self) -> str:
        """``name:arch=version``: what apt-get and the layer cache key use."""
        return f"{self.name}:{self.arch}={self.version}"

    @property
    def is_installed(self) -> bool:
        return self.status == "ii"


@dataclass(frozen=True)
class UnitFile:
    unit: str
    state: str           # enabled | disabled | masked | static | alias | generated | ...


@dataclass(frozen=True)
class Unpackaged:
    """A file or directory a unit executes or works in that no package owns."""

    unit: str
    path: str
    source: str          # the unit property it came from: ExecStart, WorkingDirectory, ...


@dataclass(frozen=True)
class TargetFacts:
    os: OsRelease
    arch: str
    sources: tuple[AptSource, ...] = ()
    packages: tuple[Package, ...] = ()
    unit_files: tuple[UnitFile, ...] = ()
    unpackaged: tuple[Unpackaged, ...] = ()
    #: What could not be read or was refused (hostile or over a cap), for the report: never silent.
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def held(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.packages if p.held)

    def package(self, name: str) -> Package | None:
        return next((p for p in self.packages if p.name == name), None)

    def unit_state(self, unit: str) -> str | None:
        return next((u.state for u in self.unit_files if u.unit == unit), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "os": asdict(self.os), "arch": self.arch,
            "sources": [asdict(s) | {"components": list(s.components)} for s in self.sources],
            "packages": [asdict(p) for p in self.packages],
            "held": list(self.held),
            "unit_files": {u.unit: u.state for u in self.unit_files},
            "unpackaged": [asdict(u) for u in self.unpackaged],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        masked = sum(u.state == "masked" for u in self.unit_files)
        return (f"{self.os} ({self.arch}); {len(self.packages)} packages ({len(self.held)} held); "
                f"{len(self.sources)} apt sources; {len(self.unit_files)} unit files ({masked} masked); "
                f"{len(self.unpackaged)} unpackaged paths")
