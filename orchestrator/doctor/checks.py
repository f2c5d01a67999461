"""Doctor checks, declared as data: name, vital or optional, the probe, and the remedy.

A vital check failing means vmrepair cannot do its job (exit non-zero); an optional one means reduced
features or speed (reported, exit unaffected).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass

from orchestrator.app import App
from orchestrator.errors import VmRepairError
from orchestrator.hypervisor.accel import detect_accel
from orchestrator.imaging import keys
from orchestrator.imaging.template import load_template

#: Free space the state dir needs for a few overlays, snapshots and one image rebuild.
MIN_FREE_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class CheckResult:
    name: str
    vital: bool
    ok: bool
    detail: str
    remedy: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


Probe = Callable[[App], tuple[bool, str]]


@dataclass(frozen=True)
class Check:
    name: str
    vital: bool
    probe: Probe
    remedy: str

    def run(self, app: App) -> CheckResult:
        try:
            ok, detail = self.probe(app)
        except VmRepairError as exc:
            ok, detail = False, exc.message
        except OSError as exc:
            ok, detail = False, f"{exc.strerror or exc}"
        return CheckResult(self.name, self.vital, ok, detail, "" if ok else self.remedy)


def _libvirt(app: App) -> tuple[bool, str]:
    return True, f"libvirt {app.conn.version()} at {app.settings.libvirt_uri}"


def _qemu(app: App) -> tuple[bool, str]:
    missing = [b for b in ("qemu-system-x86_64", "qemu-img") if shutil.which(b) is None]
    if missing:
        return False, f"missing: {', '.join(missing)}"
    return True, f"{shutil.which('qemu-system-x86_64')}, {shutil.which('qemu-img')}"


def _store_writable(app: App) -> tuple[bool, str]:
    root = app.settings.image_store
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
        pass
    free = shutil.disk_usage(root).free
    if free < MIN_FREE_BYTES:
        return False, f"{root} writable but only {free // 2**20} MiB free"
    return True, f"{root} writable, {free // 2**30} GiB free"


def _template_built(app: App) -> tuple[bool, str]:
    name = app.settings.default_template
    built = app.images.require(name)
    missing = [n for n in built.manifest.artifacts if not (built.directory / n).is_file()]
    if missing:
        return False, f"{name}: artifacts missing: {', '.join(missing)}"
    return True, f"{name} built {built.manifest.built_at} (recipe {built.manifest.recipe_hash[:12]})"


def _key_pair(app: App) -> tuple[bool, str]:
    key = app.settings.client_key
    keys.check_private_key_file(key, owner_uid=os.getuid())
    public = keys.read_public_key(key)
    fpr = keys.fingerprint(public)
    built = app.images.get(app.settings.default_template)
    if built is not None and built.manifest.client_key_fingerprint != fpr:
        return False, (f"{key} ({fpr}) is not the key the image trusts "
                       f"({built.manifest.client_key_fingerprint})")
    return True, f"{key} 0600, {fpr}"


def _acceleration(app: App) -> tuple[bool, str]:
    choice = detect_accel(app.settings.vm.accel)
    return choice.accel == "kvm", choice.reason


def _load_tool(app: App) -> tuple[bool, str]:
    template = load_template(app.settings.templates_dir, app.settings.default_template)
    tools = {"stress-ng", "stress"} & set(template.spec.packages)
    if not tools:
        return False, f"template {template.name} ships no load tool (stress-ng)"
    return True, f"{', '.join(sorted(tools))} in template {template.name}"


def _debootstrap(app: App) -> tuple[bool, str]:
    path = shutil.which("debootstrap")
    return (path is not None, path or "not installed")


def _leftovers(app: App) -> tuple[bool, str]:
    stale = [vm.name for vm in app.vms.list() if vm.is_stale]
    return (not stale, "none" if not stale else f"stale VMs: {', '.join(stale)}")


CHECKS: tuple[Check, ...] = (
    Check("libvirt", True, _libvirt,
          "start the daemons: `virtlogd -d && libvirtd -d` (or `make setup`)"),
    Check("qemu", True, _qemu, "apt-get install qemu-system-x86 qemu-utils (or `make setup`)"),
    Check("image-store", True, _store_writable,
          "make the state dir writable with >= 4 GiB free, or set VMREPAIR_STATE_DIR"),
    Check("template", True, _template_built, "run `vmrepair image build` (or `make setup`)"),
    Check("key-pair", True, _key_pair,
          "run `vmrepair image build --force` to recreate the key pair and the image"),
    Check("acceleration", False, _acceleration,
          "none needed: TCG works, only slower (KVM needs a CPU with vmx/svm)"),
    Check("load-tool", False, _load_tool, "add stress-ng to the template's packages"),
    Check("debootstrap", False, _debootstrap, "apt-get install debootstrap (needed to build images)"),
    Check("leftovers", False, _leftovers, "run `vmrepair vm reap`"),
)


def run_checks(app: App, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    return [check.run(app) for check in checks]
