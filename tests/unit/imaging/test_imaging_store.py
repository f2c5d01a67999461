"""The image store: manifests round-trip, corruption is reported with a remedy, artifacts verify."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import ImageError, ImageNotBuiltError
from orchestrator.imaging import store
from orchestrator.imaging.store import Artifact, BuiltImage, ImageManifest, ImageStore

MakeImage = Callable[..., BuiltImage]


def _manifest(**overrides: object) -> ImageManifest:
    values: dict[str, object] = {
        "template": "debian-12", "recipe_hash": "ab" * 32, "suite": "bookworm",
        "built_at": "2026-01-01T00:00:00+00:00", "build_seconds": 12.5,
        "kernel_version": "6.1.0-test", "kernel_cmdline": "root=/dev/vda", "memory_mib": 1024,
        "vcpus": 2, "host_key": "ssh-ed25519 AAAA guest", "host_key_fingerprint": "SHA256:h",
        "client_key_fingerprint": "SHA256:c",
        "artifacts": {"base.qcow2": Artifact("00" * 32, 10)},
    }
    values.update(overrides)
    return ImageManifest(**values)  # type: ignore[arg-type]


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = _manifest()
    assert ImageManifest.from_json(manifest.to_json(), source=tmp_path) == manifest


def test_manifest_written_and_read_through_the_store(tmp_path: Path) -> None:
    directory = tmp_path / "debian-12"
    directory.mkdir()
    ImageStore.write_manifest(directory, _manifest())
    built = ImageStore(tmp_path).get("debian-12")
    assert built is not None
    assert built.manifest == _manifest()
    assert built.base_disk == directory / "base.qcow2"
    assert built.kernel == directory / "vmlinuz"
    assert built.initrd == directory / "initrd.img"


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"template": "x"}',
                                 b'{"artifacts": {"a": {"sha": 1}}}'])
def test_corrupt_manifest_raises_with_remedy(tmp_path: Path, raw: bytes) -> None:
    directory = tmp_path / "debian-12"
    directory.mkdir()
    (directory / store.MANIFEST).write_bytes(raw)
    with pytest.raises(ImageError) as info:
        ImageStore(tmp_path).get("debian-12")
    assert info.value.message.startswith(f"corrupt image manifest {directory / store.MANIFEST}: ")
    assert info.value.remedy == "rebuild the template with `vmrepair image build --force`"


def test_get_of_unbuilt_template_is_none(tmp_path: Path) -> None:
    assert ImageStore(tmp_path).get("debian-12") is None
    (tmp_path / "debian-12").mkdir()  # a directory without a manifest is not a build
    assert ImageStore(tmp_path).get("debian-12") is None


def test_require_of_unbuilt_template_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ImageNotBuiltError) as info:
        ImageStore(tmp_path).require("debian-12")
    assert info.value.message == (
        f"template 'debian-12' is not built (no {tmp_path / 'debian-12' / store.MANIFEST})"
    )
    assert info.value.remedy is not None
    assert "`vmrepair image build debian-12`" in info.value.remedy


def test_list_skips_hidden_incomplete_and_files(tmp_path: Path, make_built_image: MakeImage) -> None:
    make_built_image(tmp_path, "debian-12")
    make_built_image(tmp_path, "alpine")
    (tmp_path / ".build-debian-12-123").mkdir()
    (tmp_path / "half-built").mkdir()
    (tmp_path / "debian-12.failed-build.log").write_text("log")
    assert [b.manifest.template for b in ImageStore(tmp_path).list()] == ["alpine", "debian-12"]


def test_list_of_missing_store_is_empty(tmp_path: Path) -> None:
    assert ImageStore(tmp_path / "absent").list() == []


def test_verify_intact_image(tmp_path: Path, make_built_image: MakeImage) -> None:
    assert make_built_image(tmp_path).verify() == []


def test_verify_detects_modified_artifact(tmp_path: Path, make_built_image: MakeImage) -> None:
    built = make_built_image(tmp_path)
    data = built.kernel.read_bytes()
    built.kernel.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, other content
    assert built.verify() == ["vmlinuz: sha256 mismatch"]


def test_verify_detects_size_change_and_missing_file(
    tmp_path: Path, make_built_image: MakeImage
) -> None:
    built = make_built_image(tmp_path)
    built.initrd.write_bytes(b"longer initrd")
    built.base_disk.unlink()
    size = built.manifest.artifacts["initrd.img"].size
    assert sorted(built.verify()) == ["base.qcow2: missing", f"initrd.img: size 13 != {size}"]


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert store.sha256_file(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
