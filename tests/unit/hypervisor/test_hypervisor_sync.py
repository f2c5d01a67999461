"""Content-addressed sync: what is missing is uploaded (backing first), overlays get relative backing
names on a temporary copy, and the manifest decides what counts as complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import HypervisorError
from orchestrator.hypervisor.sync import (
    MANIFEST,
    ChainDisk,
    SyncItem,
    backing_chain,
    disk_items,
    missing,
    read_manifest,
    sync,
)
from orchestrator.imaging.store import sha256_file
from orchestrator.transport.fake import FakeTransport

BASE, LAYER = "b" * 64, "l" * 64


class FakePool:
    """A pool in a dict; records every upload with the bytes it received."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = dict(files or {})
        self.uploads: list[tuple[str, bytes]] = []

    def volumes(self) -> set[str]:
        return set(self.files)

    def upload(self, volume: str, local: Path) -> None:
        data = local.read_bytes()
        self.uploads.append((volume, data))
        self.files[volume] = data

    def read(self, volume: str) -> bytes | None:
        return self.files.get(volume)

    def delete(self, volume: str) -> None:
        self.files.pop(volume, None)

    def manifest(self) -> list[str]:
        return list(json.loads(self.files[MANIFEST])["complete"])


def _rebaser(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    if argv[:3] == ("qemu-img", "rebase", "-u"):
        path = Path(argv[-1])
        path.write_bytes(path.read_bytes() + f" backing={argv[-2]}".encode())
        return 0, b"", b""
    return 127, b"", b"unexpected\n"


@pytest.fixture
def chain(tmp_path: Path) -> list[SyncItem]:
    base = tmp_path / "base.qcow2"
    base.write_bytes(b"QFI base")
    layer = tmp_path / "layer.qcow2"
    layer.write_bytes(b"QFI layer")
    return [SyncItem(BASE, base, ".qcow2"), SyncItem(LAYER, layer, ".qcow2", backing=BASE)]


def _manifest(*volumes: str) -> bytes:
    return json.dumps({"format": 1, "complete": list(volumes)}).encode()


def test_missing_keeps_chain_order_and_skips_complete_ones(chain: list[SyncItem]) -> None:
    assert missing(chain, set()) == chain
    assert missing(chain, {f"{BASE}.qcow2"}) == chain[1:]
    assert missing(chain, {f"{BASE}.qcow2", f"{LAYER}.qcow2"}) == []


def test_sync_uploads_base_then_a_rebased_copy_of_the_overlay(chain: list[SyncItem]) -> None:
    pool, runner = FakePool(), FakeTransport(_rebaser, host="local")
    result = sync(pool, chain, runner)

    assert result.uploaded == (f"{BASE}.qcow2", f"{LAYER}.qcow2")
    assert [v for v, _ in pool.uploads] == [f"{BASE}.qcow2", MANIFEST, f"{LAYER}.qcow2", MANIFEST]
    assert pool.files[f"{BASE}.qcow2"] == b"QFI base"
    # The uploaded overlay names its backing file relative to its own directory, by content.
    assert pool.files[f"{LAYER}.qcow2"] == f"QFI layer backing={BASE}.qcow2".encode()
    assert runner.argvs[0][:7] == ("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", f"{BASE}.qcow2")
    assert Path(runner.argvs[0][-1]) != chain[1].local  # a temporary copy ...
    assert chain[1].local.read_bytes() == b"QFI layer"  # ... the local layer is untouched
    assert pool.manifest() == sorted([f"{BASE}.qcow2", f"{LAYER}.qcow2"])


def test_only_what_is_missing_is_uploaded(chain: list[SyncItem]) -> None:
    pool = FakePool({f"{BASE}.qcow2": b"QFI base", MANIFEST: _manifest(f"{BASE}.qcow2")})
    result = sync(pool, chain, FakeTransport(_rebaser, host="local"))
    assert (result.uploaded, result.present) == ((f"{LAYER}.qcow2",), (f"{BASE}.qcow2",))
    assert [v for v, _ in pool.uploads] == [f"{LAYER}.qcow2", MANIFEST]


def test_nothing_is_uploaded_when_everything_is_there(chain: list[SyncItem]) -> None:
    complete = [f"{BASE}.qcow2", f"{LAYER}.qcow2"]
    pool = FakePool({**dict.fromkeys(complete, b"x"), MANIFEST: _manifest(*complete)})
    runner = FakeTransport(_rebaser, host="local")
    assert sync(pool, chain, runner).uploaded == ()
    assert pool.uploads == []
    assert runner.argvs == []


def test_a_volume_missing_from_the_manifest_is_an_interrupted_upload(chain: list[SyncItem]) -> None:
    pool = FakePool({f"{BASE}.qcow2": b"QFI ba", MANIFEST: _manifest()})
    sync(pool, chain[:1], FakeTransport(_rebaser, host="local"))
    assert pool.files[f"{BASE}.qcow2"] == b"QFI base"


@pytest.mark.parametrize("raw", [b"{", b'{"format": 9, "complete": []}', b'{"complete": "x"}', b"[]"])
def test_a_corrupt_manifest_counts_as_empty(raw: bytes) -> None:
    assert read_manifest(FakePool({MANIFEST: raw})) == set()


def test_backing_chain_is_read_base_first(tmp_path: Path) -> None:
    info = [{"filename": "/s/layers/k/warm/base.qcow2", "virtual-size": 2048},
            {"filename": "/s/images/debian-12/base.qcow2", "virtual-size": 2048}]

    def qemu_img(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        assert argv[:4] == ("qemu-img", "info", "--backing-chain", "--output=json")
        return 0, json.dumps(info).encode(), b""

    chain = backing_chain(FakeTransport(qemu_img, host="local"), Path("/s/layers/k/warm/base.qcow2"))
    assert chain == [ChainDisk(Path("/s/images/debian-12/base.qcow2"), 2048),
                     ChainDisk(Path("/s/layers/k/warm/base.qcow2"), 2048)]


def test_backing_chain_refuses_relative_names() -> None:
    out = b'[{"filename": "x.qcow2", "virtual-size": 1}]'
    runner = FakeTransport(lambda argv, stdin: (0, out, b""), host="local")
    with pytest.raises(HypervisorError, match="unexpected backing chain"):
        backing_chain(runner, Path("/x.qcow2"))


def test_disk_items_link_each_to_the_one_below(tmp_path: Path) -> None:
    base, top = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    base.write_bytes(b"a")
    top.write_bytes(b"b")
    items = disk_items([base, top], known={base: BASE})
    assert [(i.content_id, i.backing) for i in items] == [(BASE, None), (sha256_file(top), BASE)]
