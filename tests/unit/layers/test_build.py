"""The layer builder with a fake hypervisor and fake .deb source: what is installed and how, what is
published, and that nothing half-built is ever published."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.settings import Settings
from orchestrator.errors import LayerError
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.hypervisor.warm import WarmState, publish_warm_state
from orchestrator.layers.build import LayerBuilder
from orchestrator.layers.debs import DebFile, Fetched
from orchestrator.layers.install import GUEST_DIR, POLICY_RC, ZERO_FREE_MEMORY, deb_name
from orchestrator.layers.plan import LayerPlan
from orchestrator.layers.store import LayerStore
from orchestrator.transport.base import Transport
from orchestrator.transport.fake import FakeTransport

APACHE = Package("apache2", "2.4.62-1~deb12u2", "amd64", "ii")
EPOCH = Package("libfoo", "1:2.0-1", "amd64", "ii")
PLAN = LayerPlan("debian-12", "r1", ("apache2", "libfoo"), (APACHE, EPOCH))
FACTS = TargetFacts(OsRelease("debian", "12", "bookworm"), "amd64", packages=(APACHE, EPOCH))


def guest(versions: dict[str, str], apt_exit: int = 0) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if "apt-get" in argv:
            return apt_exit, b"", b"E: Unmet dependencies: apache2 : Depends: libapr1\n" if apt_exit else b""
        if argv[:2] == ("dpkg-query", "-W"):
            lines = [f"{n}:amd64\t{v}\tamd64\tii \tinstall ok installed\n" for n, v in versions.items()]
            return 0, "".join(lines).encode(), b""
        return 0, b"", b""
    return FakeTransport(handler)


class FakeVms:
    """Freezes like VmManager.freeze: runs ``prepare`` against ``vm``, then publishes a warm state."""

    def __init__(self, vm: FakeTransport) -> None:
        self.vm = vm
        self.frozen: list[str] = []

    def freeze(self, name: str, template: str, into: Path,
               prepare: Callable[[Transport], None] | None = None, *, warm: bool = False) -> WarmState:
        if prepare is not None:
            prepare(self.vm)
        disk, state = into / "overlay.qcow2", into / "state.partial"
        disk.write_bytes(b"disk")
        state.write_bytes(b"mem")
        self.frozen.append(name)
        return publish_warm_state(into, "r1", name, disk, state)


def fake_fetch(calls: list[int], *, fail: LayerError | None = None) -> Callable[..., Fetched]:
    def fetch(target: Any, wanted: Any, dest: Path, **kwargs: Any) -> Fetched:
        calls.append(len(wanted))
        if fail is not None:
            raise fail
        dest.mkdir(parents=True, exist_ok=True)
        files = []
        for package in wanted:
            path = dest / deb_name(package)
            path.write_bytes(b"deb")
            files.append(DebFile(package, path, "0" * 64, "mirror" if package is EPOCH else "target-cache"))
        return Fetched(tuple(files), ("a note",))
    return fetch


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def builder(settings: Settings, vms: FakeVms, calls: list[int], **kwargs: Any) -> LayerBuilder:
    fetch = fake_fetch(calls, fail=kwargs.pop("fail", None))
    return LayerBuilder(settings, vms, orchestrator(), fetch=fetch, **kwargs)


def orchestrator(control: bytes = b"Package: x\nVersion: 1\nDescription: a\n two lines\n") -> FakeTransport:
    """The orchestrator's own commands: ``dpkg-deb -f`` prints a control file."""
    return FakeTransport(lambda argv, stdin: (0, control, b"") if argv[0] == "dpkg-deb" else (0, b"", b""))


def test_a_layer_is_built_once_then_reused(settings: Settings) -> None:
    vm = guest({"apache2": APACHE.version, "libfoo": EPOCH.version})
    vms, calls = FakeVms(vm), []
    first = builder(settings, vms, calls).ensure(PLAN, FakeTransport(), FACTS)
    assert first.is_built and first.notes == ("a note",)
    manifest = first.layer.manifest
    assert manifest.packages == {APACHE.spec: "target-cache", EPOCH.spec: "mirror"}
    assert manifest.vm_name == f"lyr-{PLAN.key[:16]}" and vms.frozen == [manifest.vm_name]
    second = builder(settings, vms, calls).ensure(PLAN, FakeTransport(), FACTS)
    assert not second.is_built and second.layer.key == first.layer.key
    assert calls == [2]                        # fetched once
    assert not (first.layer.directory / "debs").exists()   # the .debs are not kept in the layer


def test_the_install_is_from_a_local_repository_with_services_held_back_and_cleans_up(
        settings: Settings) -> None:
    vm = guest({"apache2": APACHE.version, "libfoo": EPOCH.version})
    builder(settings, FakeVms(vm), []).ensure(PLAN, FakeTransport(), FACTS)
    argvs = [c.argv for c in vm.calls]
    update = next(a for a in argvs if a[:2] == ("apt-get", "update"))
    apt = next(a for a in argvs if "install" in a and "apt-get" in a)
    for options in (update, apt):   # only the local repository: never the template's lists or sources
        assert f"Dir::Etc::SourceList={GUEST_DIR}/sources.list" in options
        assert f"Dir::State::Lists={GUEST_DIR}/lists" in options
    assert "--allow-downgrades" in apt
    assert "apache2:amd64=2.4.62-1~deb12u2" in apt and "libfoo:amd64=1:2.0-1" in apt
    with tarfile.open(fileobj=io.BytesIO(vm.files[f"{GUEST_DIR}/repository.tar"])) as tar:
        # One transfer: the .debs, their index and the one-line sources list.
        expected = [deb_name(APACHE), deb_name(EPOCH), "Packages", "sources.list"]
        assert sorted(tar.getnames()) == sorted(expected)
        index = tar.extractfile("Packages").read()  # type: ignore[union-attr]
        assert tar.extractfile("sources.list").read() == (  # type: ignore[union-attr]
            f"deb [trusted=yes] file:{GUEST_DIR} ./\n".encode())
    assert b"Filename: ./libfoo_1%3a2.0-1_amd64.deb" in index   # the epoch as in Debian's pool
    assert index.count(b"\n\n") == 2 and b"Description: a\n two lines\nFilename" in index
    policy = next(i for i, c in enumerate(vm.calls) if c.argv[-2] == POLICY_RC)
    assert vm.calls[policy].stdin == b"#!/bin/sh\nexit 101\n"          # nothing starts during the install
    assert policy < argvs.index(apt)
    cleanup = next(i for i, a in enumerate(argvs) if a[:2] == ("rm", "-rf"))
    assert cleanup > argvs.index(apt) and POLICY_RC in argvs[cleanup]
    assert ("tar", "-x", "--no-same-owner", "-f", f"{GUEST_DIR}/repository.tar", "-C", GUEST_DIR) in argvs


@pytest.mark.parametrize("control", [
    b"Package: x\n\nPackage: evil\nVersion: 1\n",          # a second stanza smuggled in
    b"Package: x\nFilename: ../../etc/shadow\n",            # the index's own fields
    b"Package: x\nSHA256: 00\n",
])
def test_a_crafted_control_file_cannot_inject_into_the_index(settings: Settings, control: bytes) -> None:
    vm = guest({"apache2": APACHE.version, "libfoo": EPOCH.version})
    fetch = fake_fetch([])
    with pytest.raises(LayerError, match="control file is malformed or sets index fields"):
        LayerBuilder(settings, FakeVms(vm), orchestrator(control), fetch=fetch).ensure(
            PLAN, FakeTransport(), FACTS)
    assert LayerStore(settings.image_store).list() == []


def test_an_apt_failure_is_a_layer_error_and_nothing_is_published(settings: Settings) -> None:
    vm = guest({}, apt_exit=100)
    with pytest.raises(LayerError, match="Unmet dependencies") as info:
        builder(settings, FakeVms(vm), []).ensure(PLAN, FakeTransport(), FACTS)
    assert info.value.step == "install"
    store = LayerStore(settings.image_store)
    assert store.list() == [] and store.leftovers() == []


def test_a_package_left_at_another_version_fails_the_build(settings: Settings) -> None:
    vm = guest({"apache2": "2.4.57-2", "libfoo": EPOCH.version})
    with pytest.raises(LayerError, match=r"apache2:amd64=2.4.62-1~deb12u2 \(VM: 2.4.57-2\)") as info:
        builder(settings, FakeVms(vm), []).ensure(PLAN, FakeTransport(), FACTS)
    assert info.value.step == "verify"
    assert LayerStore(settings.image_store).list() == []


def test_a_fetch_failure_leaves_nothing_behind(settings: Settings) -> None:
    error = LayerError("the mirror has no apache2 2.4.62-1~deb12u2", step="fetch-mirror")
    with pytest.raises(LayerError, match="the mirror has no apache2"):
        builder(settings, FakeVms(guest({})), [], fail=error).ensure(PLAN, FakeTransport(), FACTS)
    store = LayerStore(settings.image_store)
    assert store.list() == [] and store.leftovers() == []


def test_a_full_image_store_is_refused_before_anything_is_fetched(settings: Settings) -> None:
    calls: list[int] = []
    with pytest.raises(LayerError, match="is full") as info:
        builder(settings, FakeVms(guest({})), calls, free_bytes=lambda path: 10 * 2**20).ensure(
            PLAN, FakeTransport(), FACTS)
    assert info.value.step == "preflight" and "--prune" in (info.value.remedy or "")
    assert calls == []


def test_before_the_freeze_the_guest_drops_its_cache_compacts_then_zeroes_free_memory(
        settings: Settings) -> None:
    # QEMU restores guest RAM into 2 MiB host pages: data packed into few regions and free memory
    # zeroed is what makes a layer clone restore as fast as the template's (bench/layers.py).
    vm = guest({"apache2": APACHE.version, "libfoo": EPOCH.version})
    builder(settings, FakeVms(vm), []).ensure(PLAN, FakeTransport(), FACTS)
    argvs = [c.argv for c in vm.calls]
    settle = next(i for i, a in enumerate(argvs) if a[:2] == ("sh", "-c") and "drop_caches" in a[2])
    script = argvs[settle][2]
    assert script.index("drop_caches") < script.index("compact_memory")
    assert argvs[settle + 1] == ("python3", "-c", ZERO_FREE_MEMORY)
