"""ImageBuilder end to end with a fake runner: debootstrap, mkfs.ext4 and qemu-img only write files.

The preflight step is real: it needs root, the build tools on PATH and free space; without them the
tests skip and say which is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.config.settings import Settings
from orchestrator.errors import ImageBuildError
from orchestrator.imaging import keys, store
from orchestrator.imaging.builder import REQUIRED_TOOLS, SPACE_HEADROOM_BYTES, STEPS, ImageBuilder
from orchestrator.imaging.recipe import recipe_hash
from orchestrator.imaging.template import Template, load_template
from orchestrator.transport.fake import FakeTransport

TEMPLATE = """\
name: debian-12
suite: bookworm
recipe: debian-12
packages: [systemd-sysv, openssh-server, nginx]
package_cache: [nginx]
memory_mib: 512
vcpus: 1
disk_size_gib: 1
kernel_cmdline: "root=/dev/vda console=ttyS0"
"""
KERNEL_VERSION = "6.1.0-test"


def _preflight_skip_reason(tmp_path: Path) -> str | None:
    if os.geteuid() != 0:
        return "the builder's preflight needs root"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the builder's preflight needs {', '.join(missing)} on PATH"
    if shutil.disk_usage(tmp_path).free < 1024**3 + SPACE_HEADROOM_BYTES:
        return f"the builder's preflight needs 3 GiB free in {tmp_path}"
    return None


@dataclass
class Recorder:
    """A BuildReporter that also checks, at each step, that nothing looks built yet."""

    image_store: store.ImageStore
    steps: list[str] = field(default_factory=list)
    output_lines: list[str] = field(default_factory=list)
    seen_built_early: list[str] = field(default_factory=list)
    work_at_publish: list[str] = field(default_factory=list)

    def step(self, index: int, total: int, name: str) -> None:
        assert total == len(STEPS)
        assert index == len(self.steps) + 1
        self.steps.append(name)
        if self.image_store.get("debian-12") is not None:
            self.seen_built_early.append(name)
        if name == "publish":
            (work,) = self.image_store.root.glob(".build-*")
            self.work_at_publish = sorted(p.name for p in work.iterdir())

    def output(self, line: str) -> None:
        self.output_lines.append(line)


class FakeBuildHost:
    """Answers the builder's commands by writing what the real tools would write."""

    def __init__(self) -> None:
        self.fail: dict[str, tuple[int, bytes, bytes]] = {}
        self.customize_scripts: list[str] = []  # the text of /root/customize.sh at each chroot run
        self.transport = FakeTransport(self.handle, host="local")

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] in self.fail:
            return self.fail[argv[0]]
        if argv[0] == "debootstrap":
            return self._debootstrap(argv)
        if argv[0] == "cp":  # cp -a --no-preserve=ownership OVERLAY/. TREE
            shutil.copytree(argv[-2].removesuffix("/."), argv[-1], dirs_exist_ok=True)
        elif argv[0] == "env":  # env -i ... chroot TREE /bin/sh /root/customize.sh
            tree = Path(argv[argv.index("chroot") + 1])
            self.customize_scripts.append((tree / "root" / "customize.sh").read_text())
            (tree / "etc" / "customized").write_text("yes\n")
        elif argv[0] == "mkfs.ext4":  # mkfs.ext4 ... -d TREE RAW SIZE
            tree = Path(argv[argv.index("-d") + 1])
            assert (tree / "etc" / "ssh" / "ssh_host_ed25519_key").is_file()
            Path(argv[-2]).write_bytes(b"ext4 image of " + str(tree).encode())
        elif argv[:2] == ("qemu-img", "convert"):  # qemu-img convert -f raw -O qcow2 RAW BASE
            Path(argv[-1]).write_bytes(b"QFI\xfb" + Path(argv[-2]).read_bytes())
        else:
            return 127, b"", f"{argv[0]}: unexpected in this test\n".encode()
        return 0, b"", b""

    @staticmethod
    def _debootstrap(argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        tree = Path(argv[-2])
        cache = Path(next(a for a in argv if a.startswith("--cache-dir=")).split("=", 1)[1])
        (tree / "boot").mkdir(parents=True)
        (tree / "boot" / f"vmlinuz-{KERNEL_VERSION}").write_bytes(b"kernel")
        (tree / "boot" / f"initrd.img-{KERNEL_VERSION}").write_bytes(b"initrd")
        (tree / "etc" / "ssh").mkdir(parents=True)
        (tree / "etc" / "ssh" / "ssh_host_rsa_key").write_text("stale key from the package")
        (tree / "root").mkdir()
        (cache / "nginx_1.22.1-9_amd64.deb").write_bytes(b"deb")
        return 0, b"I: Retrieving InRelease\nI: Base system installed successfully.\n", b""


@pytest.fixture
def build_env(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> tuple[Settings, Template]:
    reason = _preflight_skip_reason(tmp_path)
    if reason:
        pytest.skip(reason)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "debian-12.yaml").write_text(TEMPLATE)
    recipe = tmp_path / "recipes" / "debian-12"
    (recipe / "overlay" / "etc").mkdir(parents=True)
    (recipe / "overlay" / "etc" / "motd").write_text("vmrepair test image\n")
    (recipe / "customize.sh").write_text("#!/bin/sh\nset -e\n")
    settings = make_settings(templates_dir=templates, recipes_dir=tmp_path / "recipes")
    return settings, load_template(templates, "debian-12")


def _leftover_work_dirs(settings: Settings) -> list[Path]:
    return [*settings.image_store.glob(".build-*"), *settings.image_store.glob(".old-*")]


def test_build_publishes_a_complete_image(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    reporter = Recorder(store.ImageStore(settings.image_store))

    result = ImageBuilder(settings, host.transport, reporter).build(template)

    assert result.is_rebuilt
    assert reporter.steps == list(STEPS)
    assert reporter.seen_built_early == []  # nothing looked built before the publish step
    assert store.MANIFEST in reporter.work_at_publish  # manifest written before the rename
    assert "I: Base system installed successfully." in reporter.output_lines
    assert set(result.step_seconds) == set(STEPS) - {"manifest", "publish"}

    image = result.image
    assert image.directory == settings.image_store / "debian-12"
    assert sorted(p.name for p in image.directory.iterdir()) == sorted(
        [store.MANIFEST, store.BASE_DISK, store.KERNEL, store.INITRD, store.BUILD_LOG]
    )
    assert image.verify() == []
    for name in (store.BASE_DISK, store.KERNEL, store.INITRD):
        assert stat.S_IMODE((image.directory / name).stat().st_mode) == 0o444
    manifest_mtime = (image.directory / store.MANIFEST).stat().st_mtime_ns
    assert all(manifest_mtime >= (image.directory / n).stat().st_mtime_ns
               for n in (store.BASE_DISK, store.KERNEL, store.INITRD))
    assert _leftover_work_dirs(settings) == []

    manifest = image.manifest
    assert manifest.recipe_hash == recipe_hash(settings.recipes_dir, template)
    assert manifest.kernel_version == KERNEL_VERSION
    assert (manifest.memory_mib, manifest.vcpus) == (512, 1)
    assert manifest.client_key_fingerprint == keys.fingerprint(
        keys.read_public_key(settings.client_key)
    )
    assert json.loads((image.directory / store.MANIFEST).read_text())["template"] == "debian-12"


def test_build_runs_the_recipe_commands(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    ImageBuilder(settings, host.transport).build(template)

    tools = [argv[0] for argv in host.transport.argvs]
    assert tools == ["debootstrap", "cp", "env", "mkfs.ext4", "qemu-img"]
    debootstrap = host.transport.argvs[0]
    assert "--include=systemd-sysv,openssh-server,nginx" in debootstrap
    assert debootstrap[-3] == "bookworm"
    assert debootstrap[-1] == settings.mirror
    log = (settings.image_store / "debian-12" / store.BUILD_LOG).read_text()
    assert "== step debootstrap" in log
    assert "$ debootstrap --variant=minbase" in log
    assert "kept nginx_1.22.1-9_amd64.deb for pristine restores" in log


def test_guest_gets_fresh_host_key_and_the_client_key(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    seen: dict[str, str] = {}
    host = FakeBuildHost()
    original = host.handle

    def capture_tree(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "mkfs.ext4":
            tree = Path(argv[argv.index("-d") + 1])
            ssh = tree / "etc" / "ssh"
            seen["host_keys"] = " ".join(sorted(p.name for p in ssh.glob("ssh_host_*")))
            seen["host_pub"] = (ssh / "ssh_host_ed25519_key.pub").read_text().strip()
            seen["authorized"] = (tree / "root" / ".ssh" / "authorized_keys").read_text().strip()
            seen["motd"] = (tree / "etc" / "motd").read_text()
            seen["customized"] = (tree / "etc" / "customized").read_text()
            seen["script_left"] = str((tree / "root" / "customize.sh").exists())
            seen["debs"] = " ".join(p.name for p in (tree / "var/cache/apt/archives").iterdir())
        return original(argv, stdin)

    host.transport.handler = capture_tree
    manifest = ImageBuilder(settings, host.transport).build(template).image.manifest

    assert seen["host_keys"] == "ssh_host_ed25519_key ssh_host_ed25519_key.pub"
    assert seen["host_pub"] == manifest.host_key
    assert seen["authorized"] == keys.read_public_key(settings.client_key)
    assert seen["motd"] == "vmrepair test image\n"
    assert seen["customized"] == "yes\n"
    assert seen["script_left"] == "False"
    assert seen["debs"] == "nginx_1.22.1-9_amd64.deb"


def test_second_build_is_a_cache_hit(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    first = ImageBuilder(settings, FakeBuildHost().transport).build(template)
    host = FakeBuildHost()

    again = ImageBuilder(settings, host.transport).build(template)

    assert not again.is_rebuilt
    assert again.step_seconds == {}
    assert again.image.manifest == first.image.manifest
    assert host.transport.calls == []


def test_force_rebuilds_and_keeps_the_client_key(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    first = ImageBuilder(settings, FakeBuildHost().transport).build(template).image.manifest

    again = ImageBuilder(settings, FakeBuildHost().transport).build(template, force=True)

    assert again.is_rebuilt
    assert again.image.manifest.host_key != first.host_key  # every build gets a new host key
    assert again.image.manifest.client_key_fingerprint == first.client_key_fingerprint
    assert again.image.verify() == []
    assert _leftover_work_dirs(settings) == []


def test_changed_recipe_rebuilds(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    first = ImageBuilder(settings, FakeBuildHost().transport).build(template).image.manifest
    (settings.recipes_dir / "debian-12" / "overlay" / "etc" / "motd").write_text("changed\n")

    again = ImageBuilder(settings, FakeBuildHost().transport).build(template)

    assert again.is_rebuilt
    assert again.image.manifest.recipe_hash != first.recipe_hash


def test_failing_step_leaves_nothing_that_looks_built(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    host.fail["debootstrap"] = (1, b"", b"E: Failed getting release file http://deb.invalid\n")

    with pytest.raises(ImageBuildError) as info:
        ImageBuilder(settings, host.transport).build(template)

    failed_log = settings.image_store / "debian-12.failed-build.log"
    assert info.value.step == "debootstrap"
    assert info.value.message == (
        "step debootstrap failed (exit 1): E: Failed getting release file http://deb.invalid"
    )
    assert info.value.log == str(failed_log)
    assert info.value.remedy is not None
    assert "build log" in info.value.remedy
    assert not (settings.image_store / "debian-12" / store.MANIFEST).exists()
    assert not (settings.image_store / "debian-12").exists()
    assert _leftover_work_dirs(settings) == []
    assert "$ debootstrap" in failed_log.read_text()
    assert "E: Failed getting release file" in failed_log.read_text()


def test_failure_after_a_good_build_keeps_the_old_build(
    build_env: tuple[Settings, Template],
) -> None:
    settings, template = build_env
    first = ImageBuilder(settings, FakeBuildHost().transport).build(template).image
    host = FakeBuildHost()
    host.fail["qemu-img"] = (1, b"", b"qemu-img: No space left on device\n")

    with pytest.raises(ImageBuildError, match="step qcow2 failed") as info:
        ImageBuilder(settings, host.transport).build(template, force=True)

    assert info.value.step == "qcow2"
    kept = store.ImageStore(settings.image_store).require("debian-12")
    assert kept.manifest == first.manifest
    assert kept.verify() == []
    assert _leftover_work_dirs(settings) == []


def test_successful_build_removes_an_old_failed_log(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    host.fail["mkfs.ext4"] = (1, b"", b"mkfs.ext4: boom\n")
    with pytest.raises(ImageBuildError, match="step filesystem failed"):
        ImageBuilder(settings, host.transport).build(template)
    failed_log = settings.image_store / "debian-12.failed-build.log"
    assert failed_log.exists()

    ImageBuilder(settings, FakeBuildHost().transport).build(template)

    assert not failed_log.exists()


def test_missing_kernel_names_the_step(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    original = host.handle

    def no_kernel(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        outcome = original(argv, stdin)
        if argv[0] == "debootstrap":
            for kernel in Path(argv[-2]).glob("boot/vmlinuz-*"):
                kernel.unlink()
        return outcome

    host.transport.handler = no_kernel
    with pytest.raises(ImageBuildError) as info:
        ImageBuilder(settings, host.transport).build(template)
    assert info.value.step == "kernel"
    assert info.value.message == "no kernel in /boot of the tree"
    assert info.value.remedy is not None
    assert "linux-image" in info.value.remedy


def test_package_not_downloaded_names_the_template(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    host = FakeBuildHost()
    original = host.handle

    def no_debs(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        outcome = original(argv, stdin)
        for deb in settings.image_store.glob(".cache/debs/*.deb"):
            deb.unlink()
        return outcome

    host.transport.handler = no_debs
    with pytest.raises(ImageBuildError) as info:
        ImageBuilder(settings, host.transport).build(template)
    assert info.value.step == "package-cache"
    assert info.value.message == "package_cache: 'nginx' was not downloaded by debootstrap"
    assert info.value.remedy == f"add nginx to `packages:` in {template.path}"


def test_stale_build_directory_of_a_dead_process_is_removed(
    build_env: tuple[Settings, Template], dead_pid: int
) -> None:
    settings, template = build_env
    stale = settings.image_store / f".build-debian-12-{dead_pid}"
    (stale / "rootfs").mkdir(parents=True)

    ImageBuilder(settings, FakeBuildHost().transport).build(template)

    assert not stale.exists()


def test_extra_recipe_is_applied_after_the_recipe(build_env: tuple[Settings, Template]) -> None:
    settings, template = build_env
    path = template.path
    path.write_text(path.read_text() + "extra_recipe: debian-12-extra\n")
    extra = settings.recipes_dir / "debian-12-extra"
    (extra / "overlay" / "etc").mkdir(parents=True)
    (extra / "overlay" / "etc" / "motd").write_text("extra wins\n")
    (extra / "overlay" / "etc" / "extra").write_text("only in the extra recipe\n")
    (extra / "customize.sh").write_text("#!/bin/sh\n# extra\n")
    template = load_template(path.parent, "debian-12")
    seen: dict[str, str] = {}
    host = FakeBuildHost()
    original = host.handle

    def capture_tree(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "mkfs.ext4":
            tree = Path(argv[argv.index("-d") + 1])
            seen["motd"] = (tree / "etc" / "motd").read_text()
            seen["extra"] = (tree / "etc" / "extra").read_text()
            seen["script_left"] = str((tree / "root" / "customize.sh").exists())
        return original(argv, stdin)

    host.transport.handler = capture_tree
    result = ImageBuilder(settings, host.transport).build(template)

    tools = [argv[0] for argv in host.transport.argvs]
    assert tools == ["debootstrap", "cp", "cp", "env", "env", "mkfs.ext4", "qemu-img"]
    copies = [argv[-2] for argv in host.transport.argvs if argv[0] == "cp"]
    assert copies == [f"{settings.recipes_dir / 'debian-12' / 'overlay'}/.", f"{extra / 'overlay'}/."]
    assert host.customize_scripts == ["#!/bin/sh\nset -e\n", "#!/bin/sh\n# extra\n"]
    assert seen == {"motd": "extra wins\n", "extra": "only in the extra recipe\n", "script_left": "False"}
    assert result.image.manifest.recipe_hash == recipe_hash(settings.recipes_dir, template)
    log = (result.image.directory / store.BUILD_LOG).read_text()
    assert log.index("customize.sh of debian-12\n") < log.index("customize.sh of debian-12-extra\n")


def test_extra_recipe_without_a_customize_script_only_adds_its_overlay(
    build_env: tuple[Settings, Template],
) -> None:
    settings, template = build_env
    path = template.path
    path.write_text(path.read_text() + "extra_recipe: debian-12-extra\n")
    (settings.recipes_dir / "debian-12-extra" / "overlay" / "etc").mkdir(parents=True)
    host = FakeBuildHost()

    ImageBuilder(settings, host.transport).build(load_template(path.parent, "debian-12"))

    assert [argv[0] for argv in host.transport.argvs] == [
        "debootstrap", "cp", "cp", "env", "mkfs.ext4", "qemu-img"]
    assert host.customize_scripts == ["#!/bin/sh\nset -e\n"]
