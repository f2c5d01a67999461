"""`watch:` section of config.yaml: components, probes and thresholds (validated at the edge)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.components.defaults import DEFAULT_COMPONENTS
from orchestrator.components.ignore import strip_paths
from orchestrator.config.values import IgnoredPath, UnitName
from orchestrator.model import Component, HttpCheck

_ABS = r"^/[^\0]*$"
#: Entries of ``ignore_paths``: every watched path is compared with each.
MAX_IGNORED_PATHS = 256


class _Strict(BaseModel):
    # NaN passes no bound and infinity some: a NaN stability period once failed mid-pipeline.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HttpCheckFile(_Strict):
    url: str = Field(pattern=r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")
    expect_status: int = Field(default=200, ge=100, le=599)


class ComponentFile(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    #: Unset: what discovery decides for a discovered service of that name, else vital.
    vital: bool | None = None
    #: Validated here, not only quoted later: a unit named ``-x`` is a mistake whatever reads it.
    units: list[UnitName] = Field(default_factory=list)
    config_paths: list[str] = Field(default_factory=list)
    unit_paths: list[str] = Field(default_factory=list)
    data_paths: list[str] = Field(default_factory=list)
    config_test: list[str] = Field(default_factory=list)
    http: list[HttpCheckFile] = Field(default_factory=list)
    jsonl_logs: list[str] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    log_paths: list[str] = Field(default_factory=list)
    fstab: list[Annotated[str, Field(pattern=r"^/[^\x00]*$")]] = Field(
        default_factory=list, description="fstab files checked for entries that would stop the next boot")
    stub: bool = Field(
        default=False, description="vital and not restorable at boot: stand in for its service units with "
        "a stub in /run (until the next boot) so that units needing it start; the component itself stays "
        "down (reduced mode). Off: it stays broken and the host degraded")

    def to_component(self) -> Component:
        return Component(
            name=self.name, vital=self.vital is not False, units=tuple(self.units),
            config_paths=tuple(self.config_paths), unit_paths=tuple(self.unit_paths),
            data_paths=tuple(self.data_paths), config_test=tuple(self.config_test),
            http=tuple(HttpCheck(h.url, h.expect_status) for h in self.http),
            jsonl_logs=tuple(self.jsonl_logs), packages=tuple(self.packages),
            log_paths=tuple(self.log_paths), fstab=tuple(self.fstab), stub=self.stub,
        )


class ThresholdsFile(_Strict):
    disk_critical_pct: float = Field(default=95.0, gt=0, le=100)
    disk_warning_pct: float = Field(default=90.0, gt=0, le=100)
    inode_critical_pct: float = Field(default=95.0, gt=0, le=100)
    inode_warning_pct: float = Field(default=90.0, gt=0, le=100)
    unit_restarts_warning: int = Field(default=3, ge=1, description="NRestarts that count as flapping")
    restart_loop_failures: int = Field(
        default=3, ge=2, le=1000, description="failures (or automatic restarts) of a unit within "
        "restart_loop_minutes that count as a restart loop")
    restart_loop_minutes: int = Field(
        default=10, ge=1, le=24 * 60, description="the window (minutes) restart_loop_failures are counted in")
    http_timeout_s: float = Field(default=5.0, gt=0, le=60)
    memory_available_warning_pct: float = Field(
        default=10.0, gt=0, le=100, description="MemAvailable below this share of MemTotal is a warning")
    memory_available_critical_pct: float = Field(
        default=5.0, gt=0, le=100, description="MemAvailable below this share of MemTotal is critical")
    psi_some_avg60_warning: float = Field(
        default=40.0, gt=0, le=100, description="PSI memory 'some' avg60 (percent of time) that is a warning")
    psi_full_avg60_warning: float = Field(
        default=10.0, gt=0, le=100, description="PSI memory 'full' avg60 (percent of time) that is a warning")
    oom_window_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="how far back the kernel journal is read for OOM kills")


class WatchFile(_Strict):
    #: When true, `components` extend the defaults (same name replaces); when false, replace them.
    extend_defaults: bool = True
    #: Watch every enabled or running service of the target, not only the configured components.
    discover: bool = True
    #: Component or unit names never watched (discovered or configured).
    ignore: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9:_.@-]{1,256}$")]] = Field(default_factory=list)
    #: Paths (and everything below them) no component watches, discovered or configured.
    ignore_paths: list[IgnoredPath] = Field(default_factory=list, max_length=MAX_IGNORED_PATHS)
    components: list[ComponentFile] = Field(default_factory=list)
    mounts: list[str] = Field(default_factory=lambda: ["/"])
    thresholds: ThresholdsFile = ThresholdsFile()


@dataclass(frozen=True)
class Thresholds:
    disk_critical_pct: float = 95.0
    disk_warning_pct: float = 90.0
    inode_critical_pct: float = 95.0
    inode_warning_pct: float = 90.0
    unit_restarts_warning: int = 3
    restart_loop_failures: int = 3
    restart_loop_minutes: int = 10
    http_timeout_s: float = 5.0
    memory_available_warning_pct: float = 10.0
    memory_available_critical_pct: float = 5.0
    psi_some_avg60_warning: float = 40.0
    psi_full_avg60_warning: float = 10.0
    oom_window_minutes: int = 60


@dataclass(frozen=True)
class WatchConfig:
    """What to watch. As configured, ``components`` are the configured ones; once resolved against a
    target (:func:`orchestrator.discover.resolve.resolve_watch`) they are every component of that
    target, discovered ones included, and ``resolved`` is true."""

    components: tuple[Component, ...]
    mounts: tuple[str, ...] = ("/",)
    thresholds: Thresholds = Thresholds()
    discover: bool = True
    ignore: tuple[str, ...] = ()
    #: Paths no component watches (:mod:`orchestrator.components.ignore`).
    ignore_paths: tuple[str, ...] = ()
    #: Configured components whose ``vital`` was left unset (discovery decides for them).
    vital_unset: frozenset[str] = frozenset()
    resolved: bool = False
    #: From the target's last baseline (set by resolution): unit → (ActiveState, UnitFileState), and
    #: path → (type, mode, uid, gid) of every watched path. Probes compare against them.
    baseline_units: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    baseline_modes: Mapping[str, tuple[str, int, int, int]] = field(default_factory=dict)

    def component(self, name: str) -> Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)


def build_watch_config(watch: WatchFile | None) -> WatchConfig:
    if watch is None:
        return WatchConfig(DEFAULT_COMPONENTS)
    own = [c.to_component() for c in watch.components]
    if watch.extend_defaults:
        names = {c.name for c in own}
        components = [c for c in DEFAULT_COMPONENTS if c.name not in names] + own
    else:
        components = own
    # Discovered components are stripped when they are merged in (orchestrator.discover.resolve.merge).
    components = [strip_paths(c, watch.ignore_paths) for c in components]
    return WatchConfig(tuple(components), tuple(watch.mounts),
                       Thresholds(**watch.thresholds.model_dump()), discover=watch.discover,
                       ignore=tuple(watch.ignore), ignore_paths=tuple(watch.ignore_paths),
                       vital_unset=frozenset(c.name for c in watch.components if c.vital is None))
