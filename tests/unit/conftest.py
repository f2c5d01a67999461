"""Shared fixtures for the unit tests: settings on a temporary state dir, a fake built image and a
connection to libvirt's ``test:///default`` driver (never the real libvirtd)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.daemon import AuditSettings
from orchestrator.config.settings import Settings, SshSettings, VmSettings
from orchestrator.imaging import keys, store
from orchestrator.resources import shipped_playbooks_dir, shipped_recipes_dir, shipped_templates_dir

#: The driver keeps its state in the process while a connection is open; nothing leaves the process.
TEST_URI = "test:///default"
#: The one domain ``test:///default`` starts with; every other domain is a test's leftover.
TEST_DRIVER_DOMAIN = "test"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on ``tmp_path/state`` with the shipped templates, recipes and playbooks (no drop-ins);
    override any field."""

    def factory(**overrides: Any) -> Settings:
        settings = Settings(
            config_path=None,
            state_dir=tmp_path / "state",
            libvirt_uri=TEST_URI,
            templates_dir=shipped_templates_dir(),
            recipes_dir=shipped_recipes_dir(),
            playbooks_dir=shipped_playbooks_dir(),
            # Never the machine's /etc/vmrepair/playbooks.d from a unit test.
            playbooks_dropin_dir=tmp_path / "playbooks.d",
            mirror="http://deb.invalid/debian",
            default_template="debian-12",
            ssh=SshSettings(),
            vm=VmSettings(accel="tcg"),
            # Never the real /var/log/vmrepair/audit.jsonl from a unit test.
            audit=AuditSettings(path=tmp_path / "audit.jsonl"),
        )
        return dataclasses.replace(settings, **overrides)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def make_built_image() -> Callable[..., store.BuiltImage]:
    """Write a complete (tiny, fake) build of a template into an image store, as the builder would."""

    def factory(
        store_root: Path,
        template: str = "debian-12",
        *,
        recipe_hash: str = "0" * 64,
        client_public: str | None = None,
    ) -> store.BuiltImage:
        directory = store_root / template
        directory.mkdir(parents=True)
        contents = {store.BASE_DISK: b"QFI\xfb fake base", store.KERNEL: b"kernel",
                    store.INITRD: b"initrd"}
        artifacts = {}
        for name, data in contents.items():
            (directory / name).write_bytes(data)
            artifacts[name] = store.Artifact(store.sha256_file(directory / name), len(data))
        _, host_public = keys.generate_ed25519("vmrepair-guest")
        if client_public is None:
            _, client_public = keys.generate_ed25519("vmrepair-orchestrator")
        manifest = store.ImageManifest(
            template=template, recipe_hash=recipe_hash, suite="bookworm",
            built_at="2026-01-01T00:00:00+00:00", build_seconds=1.0,
            kernel_version="6.1.0-test", kernel_cmdline="root=/dev/vda console=ttyS0",
            memory_mib=512, vcpus=1, host_key=host_public,
            host_key_fingerprint=keys.fingerprint(host_public),
            client_key_fingerprint=keys.fingerprint(client_public), artifacts=artifacts,
        )
        store.ImageStore.write_manifest(directory, manifest)
        return store.BuiltImage(directory, manifest)

    return factory


def _remove_test_domains(uri: str) -> None:
    import libvirt

    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name() == TEST_DRIVER_DOMAIN:
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    finally:
        conn.close()


@pytest.fixture
def libvirt_conn() -> Iterator[Any]:
    """A LibvirtConnection to ``test:///default``; domains a test leaves behind are removed."""
    from orchestrator.hypervisor.connection import LibvirtConnection

    # The test driver's state lives as long as any connection to it; start from its defaults.
    _remove_test_domains(TEST_URI)
    conn = LibvirtConnection(TEST_URI)
    yield conn
    _remove_test_domains(TEST_URI)
    conn.close()


@pytest.fixture
def dead_pid() -> int:
    """A pid no process can have (one above the kernel's pid_max)."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
