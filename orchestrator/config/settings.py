"""The orchestrator's own configuration: ``/etc/vmrepair/config.yaml`` (optional) + environment.

``VMREPAIR_CONFIG`` points at another config file, ``VMREPAIR_STATE_DIR`` overrides the state dir.
Both files are optional: with neither, defaults apply. The ``*.yaml`` drop-ins of ``config_dropin_dir``
(default ``/etc/vmrepair/config.d``) are merged over the file (:mod:`orchestrator.config.dropins`).

Playbooks, VM templates and image recipes default to the copies shipped inside the package
(:mod:`orchestrator.resources`); ``playbooks_dir``, ``templates_dir`` and ``images_dir`` replace them,
and the ``*.yaml`` files of ``playbooks_dropin_dir`` add to or override the playbooks by name
(:mod:`orchestrator.playbooks.catalog`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.components.config import WatchConfig, WatchFile, build_watch_config
from orchestrator.config.daemon import AuditSettings, DaemonSettings, HealthSettings
from orchestrator.config.dropins import LayeredConfig, load_layered
from orchestrator.config.fleet import FleetSettings
from orchestrator.config.gate import GateSettings
from orchestrator.config.hypervisors import HypervisorList, HypervisorSettings
from orchestrator.config.metrics import MetricsSettings
from orchestrator.config.notify import NotifySettings
from orchestrator.config.reboot import RebootSettings
from orchestrator.config.retention import RetentionSettings
from orchestrator.config.values import AbsolutePath, AllowedRoot
from orchestrator.errors import ConfigError
from orchestrator.resources import shipped_playbooks_dir, shipped_recipes_dir, shipped_templates_dir

DEFAULT_CONFIG_PATH = Path("/etc/vmrepair/config.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/vmrepair")
#: Local playbooks that add to or override the shipped ones by name; a missing directory means none.
DEFAULT_PLAYBOOKS_DROPIN_DIR = Path("/etc/vmrepair/playbooks.d")
#: Drop-ins merged over config.yaml in lexical order; a missing directory means none.
DEFAULT_CONFIG_DROPIN_DIR = Path("/etc/vmrepair/config.d")
#: The root of a source checkout. Kept for tests that read files beside the package (the systemd
#: unit, the top-level data directories); product code finds its data with orchestrator.resources.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _Strict(BaseModel):
    # NaN passes no bound and infinity some: a NaN stability period once failed mid-pipeline.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SshSettings(_Strict):
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    command_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    max_output_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)


class VmSettings(_Strict):
    boot_timeout_s: float = Field(default=240.0, gt=0, le=3600)
    accel: Literal["auto", "kvm", "tcg"] = "auto"


class LayerSettings(_Strict):
    """Host layers: the target's packages installed over the template (issue 10)."""

    enabled: bool = True
    #: Which packages a layer carries: those of the affected components and their dependencies, or
    #: every package installed on the target (slower to build, closer to the target).
    scope: Literal["components", "all"] = "components"
    #: Where exact versions the target's apt cache lacks are downloaded from (orchestrator side;
    #: the guest never has network). Default: the mirror of the image builds.
    mirror: str | None = None
    security_mirror: str = "http://security.debian.org/debian-security"
    #: A layer that would install more than this many packages is refused (and the run falls back
    #: to the template): a sign the target is far from any template.
    max_packages: int = Field(default=400, ge=1, le=5000)
    max_download_bytes: int = Field(default=1024**3, ge=1024**2)
    #: A target on another Debian release gets the default template's recipe built for its release
    #: during the run (minutes, once); off: the run stays on the default template and says why.
    build_releases: bool = True
    build_timeout_s: float = Field(default=900.0, gt=0, le=7200)


class RepairSettings(_Strict):
    #: How long a candidate fix must keep passing under load in the troubleshooting VM.
    stable_period_s: float = Field(default=20.0, ge=0, le=3600)
    load: bool = Field(default=True, description="run stress-ng during the stability period")
    step_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    #: Deadline of one operation while applying to the target: compressing a runaway multi-GB log
    #: (the data-preserving disk repair) takes minutes, far longer than a repair step in the VM.
    apply_op_timeout_s: float = Field(default=1800.0, gt=0, le=86400)
    #: Fix packages may only touch paths under these roots (resolved without following symlinks).
    allowed_roots: list[AllowedRoot] = Field(
        default_factory=lambda: ["/etc", "/opt", "/var/lib", "/var/log", "/usr/local/etc"]
    )
    #: Files larger than this are captured as placeholders (size + head/tail), never as content.
    max_capture_file_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)


class TargetSettings(_Strict):
    #: known_hosts file that pins host keys of ssh:// targets (required for ssh:// targets).
    known_hosts: AbsolutePath | None = None
    #: Private key for ssh:// targets; default: the orchestrator's client key.
    ssh_key: AbsolutePath | None = None
    #: OpenSSH client config giving ssh:// targets HostName, User, Port, IdentityFile and ProxyJump;
    #: default: the invoking user's ~/.ssh/config when it exists.
    ssh_config: AbsolutePath | None = None


class ConfigFile(_Strict):
    """Schema of ``config.yaml``; unknown keys are rejected."""

    state_dir: AbsolutePath | None = None
    libvirt_uri: str = "qemu:///system"
    #: Default for the three data directories: the copies shipped inside the package.
    playbooks_dir: AbsolutePath | None = None
    templates_dir: AbsolutePath | None = None
    images_dir: AbsolutePath | None = None
    playbooks_dropin_dir: AbsolutePath = DEFAULT_PLAYBOOKS_DROPIN_DIR
    #: Only config.yaml itself may set this (a drop-in would choose the drop-ins).
    config_dropin_dir: AbsolutePath = DEFAULT_CONFIG_DROPIN_DIR
    mirror: str | None = Field(
        default=None, description="Debian mirror for image builds; default: the host's apt sources"
    )
    default_template: str = "debian-12"
    ssh: SshSettings = SshSettings()
    vm: VmSettings = VmSettings()
    repair: RepairSettings = RepairSettings()
    layers: LayerSettings = LayerSettings()
    targets: TargetSettings = TargetSettings()
    watch: WatchFile | None = None
    reboot: RebootSettings = RebootSettings()
    daemon: DaemonSettings = DaemonSettings()
    audit: AuditSettings = AuditSettings()
    health: HealthSettings = HealthSettings()
    retention: RetentionSettings = RetentionSettings()
    metrics: MetricsSettings = MetricsSettings()
    notify: NotifySettings = NotifySettings()
    gate: GateSettings = GateSettings()
    fleet: FleetSettings = FleetSettings()
    #: Hypervisors troubleshooting VMs may run on; empty: the local ``libvirt_uri`` only.
    hypervisors: HypervisorList = Field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """Resolved settings the rest of the program uses (plain object, no pydantic inside)."""

    config_path: Path | None
    state_dir: Path
    libvirt_uri: str
    templates_dir: Path
    recipes_dir: Path
    mirror: str | None
    default_template: str
    ssh: SshSettings
    vm: VmSettings
    repair: RepairSettings = field(default_factory=RepairSettings)
    layers: LayerSettings = field(default_factory=LayerSettings)
    targets: TargetSettings = field(default_factory=TargetSettings)
    watch: WatchConfig = field(default_factory=lambda: build_watch_config(None))
    reboot: RebootSettings = field(default_factory=RebootSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    gate: GateSettings = field(default_factory=GateSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    playbooks_dir: Path = field(default_factory=shipped_playbooks_dir)
    playbooks_dropin_dir: Path = DEFAULT_PLAYBOOKS_DROPIN_DIR
    hypervisors: tuple[HypervisorSettings, ...] = ()

    @property
    def image_store(self) -> Path:
        return self.state_dir / "images"

    @property
    def vms_dir(self) -> Path:
        return self.state_dir / "vms"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def client_key(self) -> Path:
        return self.keys_dir / "id_ed25519"

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    @property
    def baselines_dir(self) -> Path:
        return self.state_dir / "baselines"

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "vmrepair.lock"

    @property
    def quarantine_dir(self) -> Path:
        return self.state_dir / "quarantine"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Resolve settings from the config file (if any) and the environment.

    Raises:
        ConfigError: the config file exists but is invalid, VMREPAIR_CONFIG names a missing file,
            VMREPAIR_STATE_DIR is not absolute, or
            a shipped data directory that is needed as a default is missing from the package.
    """
    env = dict(os.environ) if env is None else env
    layered = load_config(env)
    cfg, path = layered.config, layered.path
    state_dir = Path(env["VMREPAIR_STATE_DIR"]) if env.get("VMREPAIR_STATE_DIR") else None
    if state_dir is not None and not state_dir.is_absolute():
        # Like state_dir in the file: read against the working directory it would move with every cd.
        raise ConfigError(f"VMREPAIR_STATE_DIR={env['VMREPAIR_STATE_DIR']}: not an absolute path",
                          remedy="set it to an absolute path, e.g. /var/lib/vmrepair")
    return Settings(
        config_path=path,
        state_dir=state_dir or cfg.state_dir or DEFAULT_STATE_DIR,
        libvirt_uri=cfg.libvirt_uri,
        templates_dir=cfg.templates_dir or shipped_templates_dir(),
        recipes_dir=cfg.images_dir or shipped_recipes_dir(),
        mirror=cfg.mirror,
        default_template=cfg.default_template,
        ssh=cfg.ssh,
        vm=cfg.vm,
        repair=cfg.repair,
        layers=cfg.layers,
        targets=cfg.targets,
        watch=build_watch_config(cfg.watch),
        reboot=cfg.reboot,
        daemon=cfg.daemon,
        audit=cfg.audit,
        health=cfg.health,
        retention=cfg.retention,
        metrics=cfg.metrics,
        notify=cfg.notify,
        gate=cfg.gate,
        fleet=cfg.fleet,
        playbooks_dir=cfg.playbooks_dir or shipped_playbooks_dir(),
        playbooks_dropin_dir=cfg.playbooks_dropin_dir,
        hypervisors=tuple(cfg.hypervisors),
    )


def config_path(env: Mapping[str, str]) -> Path | None:
    """The config file to read: ``VMREPAIR_CONFIG`` (which must exist), else the default one when it
    exists, else None (defaults and drop-ins only)."""
    explicit = env.get("VMREPAIR_CONFIG")
    if explicit:
        return Path(explicit)  # an explicitly named file must exist: reading it says so
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(env: Mapping[str, str]) -> LayeredConfig[ConfigFile]:
    """The config file and its drop-ins, validated and merged (environment overrides not applied).

    Raises:
        ConfigError: as :func:`~orchestrator.config.dropins.load_layered`.
    """
    return load_layered(ConfigFile, config_path(env), lambda cfg: cfg.config_dropin_dir)
