"""Build a template image from its recipe.

Steps (each timed and logged to ``build.log``): preflight → debootstrap → overlay → keys →
customize → package-cache → kernel → filesystem → qcow2 → manifest → publish. The overlay and
customize steps apply the template's ``recipe``, then its ``extra_recipe`` if it has one. Everything
happens in a private ``.build-*`` directory that is renamed into the store only after the manifest is
written, so an interrupted build never leaves something that looks built.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.config.settings import Settings
from orchestrator.errors import ImageBuildError, TransportError, VmRepairError
from orchestrator.fsutil import ensure_private_dir, fsync_dir, pid_alive
from orchestrator.imaging import keys, store
from orchestrator.imaging.cleanup import safe_rmtree
from orchestrator.imaging.mirror import host_mirror
from orchestrator.imaging.recipe import normalize_overlay, recipe_dirs, recipe_hash
from orchestrator.imaging.template import Template
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

STEPS = (
    "preflight", "debootstrap", "overlay", "keys", "customize", "package-cache",
    "kernel", "filesystem", "qcow2", "manifest", "publish",
)
REQUIRED_TOOLS = ("debootstrap", "chroot", "mkfs.ext4", "qemu-img", "umount")
#: Headroom beyond the disk size: the debootstrap tree and the raw image exist at the same time.
SPACE_HEADROOM_BYTES = 2 * 1024**3
CHROOT_ENV = {
    "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
}


class BuildReporter(Protocol):
    """Receives progress; the CLI renders it with rich, tests record it."""

    def step(self, index: int, total: int, name: str) -> None: ...

    def output(self, line: str) -> None: ...


class _NullReporter:
    def step(self, index: int, total: int, name: str) -> None:
        log.info("image build step %d/%d: %s", index, total, name)

    def output(self, line: str) -> None:
        pass


@dataclass(frozen=True)
class BuildResult:
    image: store.BuiltImage
    is_rebuilt: bool
    step_seconds: dict[str, float]


class ImageBuilder:
    """Builds templates into the image store.

    Raises (from :meth:`build`):
        ImageBuildError: a step failed; names the step and the log kept beside the store.
        ConfigError: the template's recipe directory is missing.
    """

    def __init__(
        self, settings: Settings, runner: Transport, reporter: BuildReporter | None = None
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.reporter: BuildReporter = reporter or _NullReporter()
        self.store = store.ImageStore(settings.image_store)
        self._log_handle: object | None = None

    # -- public ------------------------------------------------------------------------------
    def build(self, template: Template, *, force: bool = False) -> BuildResult:
        wanted = recipe_hash(self.settings.recipes_dir, template)
        existing = self.store.get(template.name)
        if existing is not None and existing.manifest.recipe_hash == wanted and not force:
            return BuildResult(existing, is_rebuilt=False, step_seconds={})
        ensure_private_dir(self.store.root, mode=0o711)
        with self._lock(template.name):
            self._reap_stale_builds()
            work = self.store.root / f".build-{template.name}-{os.getpid()}"
            safe_rmtree(work, self.runner)
            ensure_private_dir(work)
            log_path = work / store.BUILD_LOG
            timings: dict[str, float] = {}
            try:
                with log_path.open("a", encoding="utf-8") as self._log:
                    built = self._run_steps(template, wanted, work, timings)
            except BaseException as exc:
                self._keep_failed_log(template.name, log_path)
                if isinstance(exc, ImageBuildError) and exc.log is None:
                    exc.log = str(self._failed_log(template.name))  # the log its remedy points to
                with contextlib.suppress(VmRepairError, OSError):
                    safe_rmtree(work, self.runner)
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise ImageBuildError(
                        f"disk full in the image store {self.store.root}",
                        step="build", log=str(self._failed_log(template.name)),
                        remedy="free space there (or set state_dir) and rebuild",
                    ) from exc
                raise
            return BuildResult(built, is_rebuilt=True, step_seconds=timings)

    # -- steps ---------------------------------------------------------------------------------
    def _run_steps(
        self, template: Template, wanted: str, work: Path, timings: dict[str, float]
    ) -> store.BuiltImage:
        spec = template.spec
        tree = work / "rootfs"
        state: dict[str, str] = {}
        start_all = time.monotonic()
        actions: dict[str, Callable[[], None]] = {
            "preflight": lambda: self._preflight(template),
            "debootstrap": lambda: self._debootstrap(template, tree),
            "overlay": lambda: self._overlay(template, tree),
            "customize": lambda: self._customize(template, tree),
            "keys": lambda: state.update(self._install_keys(tree)),
            "package-cache": lambda: self._package_cache(template, tree),
            "kernel": lambda: state.update(self._extract_kernel(tree, work)),
            "filesystem": lambda: self._filesystem(template, tree, work),
            "qcow2": lambda: self._qcow2(work),
        }
        for index, name in enumerate(STEPS[:-2], start=1):
            self.reporter.step(index, len(STEPS), name)
            self._note(f"== step {name}")
            began = time.monotonic()
            actions[name]()
            timings[name] = round(time.monotonic() - began, 2)
        self.reporter.step(len(STEPS) - 1, len(STEPS), "manifest")
        artifacts = {
            name: store.Artifact(store.sha256_file(work / name), (work / name).stat().st_size)
            for name in (store.BASE_DISK, store.KERNEL, store.INITRD)
        }
        manifest = store.ImageManifest(
            template=spec.name,
            recipe_hash=wanted,
            suite=spec.suite,
            built_at=now_timestamp(),
            build_seconds=round(time.monotonic() - start_all, 1),
            kernel_version=state["kernel_version"],
            kernel_cmdline=spec.kernel_cmdline,
            memory_mib=spec.memory_mib,
            vcpus=spec.vcpus,
            host_key=state["host_key"],
            host_key_fingerprint=keys.fingerprint(state["host_key"]),
            client_key_fingerprint=keys.fingerprint(state["client_key"]),
            artifacts=artifacts,
        )
        store.ImageStore.write_manifest(work, manifest)
        self.reporter.step(len(STEPS), len(STEPS), "publish")
        return self._publish(template.name, work)

    def _preflight(self, template: Template) -> None:
        if os.geteuid() != 0:
            raise ImageBuildError(
                "building an image needs root (debootstrap, chroot)", step="preflight",
                remedy="run as root (sudo make setup)",
            )
        missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
        if missing:
            raise ImageBuildError(
                f"missing tools: {', '.join(missing)}", step="preflight",
                remedy="run `make setup` (installs debootstrap, qemu-utils, e2fsprogs)",
            )
        free = shutil.disk_usage(self.store.root).free
        need = template.spec.disk_size_gib * 1024**3 + SPACE_HEADROOM_BYTES
        if free < need:
            raise ImageBuildError(
                f"not enough space in {self.store.root}: {free // 2**20} MiB free, "
                f"{need // 2**20} MiB needed", step="preflight",
                remedy="free space or point state_dir at a larger filesystem",
            )

    def _debootstrap(self, template: Template, tree: Path) -> None:
        spec = template.spec
        mirror = self.settings.mirror or host_mirror(spec.suite)
        cache = ensure_private_dir(self.store.root / ".cache" / "debs")
        self._cmd("debootstrap", [
            "debootstrap", f"--variant={spec.variant}", "--components=main",
            f"--include={','.join(spec.packages)}", f"--cache-dir={cache}",
            spec.suite, str(tree), mirror,
        ], timeout=1800)

    def _overlay(self, template: Template, tree: Path) -> None:
        # In recipe order: a file of the extra recipe's overlay replaces the first recipe's.
        for recipe in recipe_dirs(self.settings.recipes_dir, template):
            overlay = recipe / "overlay"
            if not overlay.is_dir():
                continue
            # -a keeps links and exec bits; --no-preserve=ownership makes everything root-owned in the
            # image. The recipe may be installed package data: modes that came from the installer's
            # umask, and pip's bytecode beside the overlay's Python files, are normalized away after.
            self._cmd("overlay", ["cp", "-a", "--no-preserve=ownership", f"{overlay}/.", str(tree)])
            normalize_overlay(overlay, tree)

    def _customize(self, template: Template, tree: Path) -> None:
        # In recipe order, each script at the same place: the extra recipe's customize.sh builds on
        # what the first one did (its accounts, enabled units), never the other way round.
        for recipe in recipe_dirs(self.settings.recipes_dir, template):
            script = recipe / "customize.sh"
            if not script.is_file():
                continue
            inside = tree / "root" / "customize.sh"
            shutil.copyfile(script, inside)
            self._note(f"customize.sh of {recipe.name}")
            try:
                self._cmd("customize", ["env", "-i", *[f"{k}={v}" for k, v in CHROOT_ENV.items()],
                                        "chroot", str(tree), "/bin/sh", "/root/customize.sh"])
            finally:
                inside.unlink(missing_ok=True)

    def _install_keys(self, tree: Path) -> dict[str, str]:
        client_public = keys.ensure_client_key(self.settings.client_key)
        private, public = keys.generate_ed25519("vmrepair-guest")
        ssh_dir = tree / "etc" / "ssh"
        for stale in ssh_dir.glob("ssh_host_*_key*"):
            stale.unlink()
        (ssh_dir / "ssh_host_ed25519_key").write_bytes(private)
        (ssh_dir / "ssh_host_ed25519_key").chmod(0o600)
        (ssh_dir / "ssh_host_ed25519_key.pub").write_text(public + "\n")
        root_ssh = tree / "root" / ".ssh"
        root_ssh.mkdir(mode=0o700, exist_ok=True)
        (root_ssh / "authorized_keys").write_text(client_public + "\n")
        (root_ssh / "authorized_keys").chmod(0o600)
        return {"host_key": public, "client_key": client_public}

    def _package_cache(self, template: Template, tree: Path) -> None:
        cache = self.store.root / ".cache" / "debs"
        archives = tree / "var" / "cache" / "apt" / "archives"
        archives.mkdir(parents=True, exist_ok=True)
        for package in template.spec.package_cache:
            debs = sorted(cache.glob(f"{package}_*.deb"))
            if not debs:
                raise ImageBuildError(
                    f"package_cache: {package!r} was not downloaded by debootstrap",
                    step="package-cache",
                    remedy=f"add {package} to `packages:` in {template.path}",
                )
            shutil.copy2(debs[-1], archives / debs[-1].name)
            self._note(f"kept {debs[-1].name} for pristine restores")

    def _extract_kernel(self, tree: Path, work: Path) -> dict[str, str]:
        kernels = sorted((tree / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise ImageBuildError(
                "no kernel in /boot of the tree", step="kernel",
                remedy="add a linux-image package (linux-image-cloud-amd64) to the template",
            )
        version = kernels[-1].name.removeprefix("vmlinuz-")
        initrd = tree / "boot" / f"initrd.img-{version}"
        if not initrd.is_file():
            raise ImageBuildError(f"no initrd for kernel {version}", step="kernel")
        shutil.copyfile(kernels[-1], work / store.KERNEL)
        shutil.copyfile(initrd, work / store.INITRD)
        return {"kernel_version": version}

    def _filesystem(self, template: Template, tree: Path, work: Path) -> None:
        raw = work / "root.raw"
        self._cmd("filesystem", [
            "mkfs.ext4", "-q", "-F", "-L", "vmrepair-root", "-d", str(tree),
            str(raw), f"{template.spec.disk_size_gib}G",
        ], timeout=900)
        safe_rmtree(tree, self.runner)

    def _qcow2(self, work: Path) -> None:
        raw = work / "root.raw"
        self._cmd("qcow2", ["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                            str(raw), str(work / store.BASE_DISK)], timeout=900)
        raw.unlink()
        for name in (store.BASE_DISK, store.KERNEL, store.INITRD):
            path = work / name
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
            # Read-only: linked clones depend on the base never changing under them.
            path.chmod(0o444)

    def _publish(self, name: str, work: Path) -> store.BuiltImage:
        target = self.store.image_dir(name)
        old = self.store.root / f".old-{name}-{os.getpid()}"
        if target.exists():
            target.rename(old)
        work.rename(target)
        fsync_dir(self.store.root)
        safe_rmtree(old, self.runner)
        self._failed_log(name).unlink(missing_ok=True)
        return self.store.require(name)

    # -- plumbing --------------------------------------------------------------------------------
    def _note(self, line: str) -> None:
        self._log.write(line + "\n")
        self._log.flush()

    def _cmd(self, step: str, argv: list[str], *, timeout: float = 600) -> None:
        pending = bytearray()

        def sink(_stream: str, chunk: bytes) -> None:
            self._log.write(chunk.decode("utf-8", errors="replace"))
            pending.extend(chunk)
            *lines, rest = pending.split(b"\n")
            pending[:] = rest
            for line in lines:
                self.reporter.output(line.decode("utf-8", errors="replace")[:200])

        self._note("$ " + " ".join(argv))
        try:
            result = self.runner.run(argv, timeout=timeout, on_output=sink, max_output=64 * 1024)
        except TransportError as exc:
            raise ImageBuildError(f"{step}: {exc}", step=step) from exc
        self._log.flush()
        if not result.succeeded:
            tail = result.stderr_text.strip().splitlines()[-5:] or result.stdout_text.splitlines()[-5:]
            raise ImageBuildError(
                f"step {step} failed (exit {result.exit_status}): {' | '.join(tail)}",
                step=step,
                remedy="see the build log named below; fix the recipe or the mirror and rebuild",
            )

    def _failed_log(self, name: str) -> Path:
        return self.store.root / f"{name}.failed-build.log"

    def _keep_failed_log(self, name: str, log_path: Path) -> None:
        with contextlib.suppress(OSError):
            shutil.copyfile(log_path, self._failed_log(name))

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        lock_path = self.store.root / f".lock-{name}"
        with lock_path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ImageBuildError(
                    f"another build of {name!r} is running (lock {lock_path})", step="preflight",
                    remedy="wait for it to finish",
                ) from exc
            yield

    def _reap_stale_builds(self) -> None:
        for entry in self.store.root.glob(".build-*"):
            pid = entry.name.rsplit("-", 1)[-1]
            if pid.isdigit() and pid_alive(int(pid)):
                continue
            log.warning("removing stale build directory %s", entry)
            safe_rmtree(entry, self.runner)
        for entry in self.store.root.glob(".old-*"):
            safe_rmtree(entry, self.runner)

