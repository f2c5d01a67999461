"""The layer store: a layer is complete only with its manifest and warm state; partial builds are
leftovers; two builders of one key are serialized."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import LayerError
from orchestrator.hypervisor.warm import publish_warm_state
from orchestrator.layers.store import LayerManifest, LayerStore
from orchestrator.timestamps import now_timestamp

KEY = "ab" * 32


def manifest(key: str = KEY, recipe: str = "r1") -> LayerManifest:
    return LayerManifest(key=key, template="debian-12", recipe_hash=recipe, vm_name=f"lyr-{key[:16]}",
                         packages={"apache2:amd64=2.4": "mirror"}, deb_sha256={"apache2:amd64=2.4": "00"},
                         built_at=now_timestamp(), build_seconds=1.0)


def build(store: LayerStore, key: str = KEY, recipe: str = "r1") -> Path:
    work = store.work_dir(key)
    disk, state = work / "d.qcow2", work / "s.sav"
    disk.write_bytes(b"disk")
    state.write_bytes(b"state")
    publish_warm_state(work, recipe, f"lyr-{key[:16]}", disk, state)
    return work


def test_a_published_layer_is_found_and_listed(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    layer = store.publish(build(store), manifest())
    assert store.get(KEY) == layer and store.get(KEY, "r1") == layer
    assert store.get(KEY, "other-recipe") is None       # a layer of an older template build
    assert [x.key for x in store.list()] == [KEY]
    assert store.leftovers() == []


def test_a_build_killed_before_publish_never_looks_built(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    work = build(store)
    work.rename(store.root / ".build-abababababababab-999999999")   # its builder is gone
    assert store.get(KEY) is None and store.list() == []
    assert [p.name for p in store.leftovers()] == [".build-abababababababab-999999999"]


def test_a_layer_without_its_warm_state_or_with_a_corrupt_manifest_is_not_used(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    layer = store.publish(build(store), manifest())
    (layer.warm.directory / "warm.json").unlink()
    assert store.get(KEY) is None
    (layer.directory / "layer.json").write_text("{not json")
    with pytest.raises(LayerError, match="corrupt layer manifest"):
        store.get(KEY)
    assert store.list() == []
    assert layer.directory in store.leftovers()


def test_another_format_is_rebuilt_not_misread(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    layer = store.publish(build(store), manifest())
    data = json.loads((layer.directory / "layer.json").read_text())
    (layer.directory / "layer.json").write_text(json.dumps(data | {"format": 99}))
    assert store.get(KEY) is None


def test_keys_are_checked_and_removal_stays_inside_the_store(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    with pytest.raises(LayerError, match="invalid layer key"):
        store.directory("../../etc")
    with pytest.raises(LayerError, match="refusing to delete"):
        store.remove(tmp_path)


def test_two_builders_of_one_key_are_serialized(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    order: list[str] = []

    def builder(name: str) -> None:
        with store.lock(KEY, timeout_s=10):
            order.append(f"{name}+")
            time.sleep(0.3)
            order.append(f"{name}-")

    threads = [threading.Thread(target=builder, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])


def test_a_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with store.lock(KEY, timeout_s=5):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    try:
        with pytest.raises(LayerError, match="being built by another run"), store.lock(KEY, timeout_s=0.6):
            pass
    finally:
        release.set()
        thread.join()
