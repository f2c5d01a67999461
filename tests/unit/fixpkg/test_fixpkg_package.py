"""FixPackage on disk: round trip, crash-safe layout, and refusal of tampered or broken packages."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from orchestrator.errors import FixPackageError, StateError
from orchestrator.fixpkg import FixPackage, WriteFileOp
from tests.unit.apply.fakes import FakeFile, sha
from tests.unit.fixpkg.scenario import CONF, LOG, OLD, UNIT_FILE, build, make_target, make_vm

NEW_CONF = b"listen 80\nworkers 4\n"


def _package() -> FixPackage:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = NEW_CONF
    vm.files[UNIT_FILE].data += b"Restart=always\n"
    vm.files["/etc/app/conf.d/new.conf"] = FakeFile(b"new\n")
    del vm.files[OLD]
    vm.rotate_log(LOG, method="compress")
    replay = [{"op": "rotate_log", "path": LOG, "method": "compress"},
              {"op": "unit", "unit": "app.service", "action": "restart"}]
    return build(target, vm, replay, before_content=lambda p: target.files[p].data)


def test_round_trip(tmp_path: Path) -> None:
    pkg = _package()
    directory = tmp_path / "packages" / pkg.id
    pkg.save(directory)
    loaded = FixPackage.load(directory)
    assert loaded == pkg
    assert [op.name for op in loaded.operations] == [
        "make_dir", "write_file", "write_file", "remove_file", "write_file", "daemon_reload", "rotate_log",
        "unit",
    ]


def test_layout_is_private_and_content_addressed(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    blobs = sorted(p.name for p in (tmp_path / "pkg" / "files").iterdir())
    assert blobs == sorted(op.sha256 for op in pkg.operations if isinstance(op, WriteFileOp))
    assert stat.S_IMODE((tmp_path / "pkg").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "pkg" / "files" / sha(NEW_CONF)).stat().st_mode) == 0o600
    document = json.loads((tmp_path / "pkg" / "package.json").read_bytes())
    assert "content" not in json.dumps(document["operations"])   # no content inside package.json


def test_interrupted_save_is_not_a_package(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    (tmp_path / "pkg" / "package.json").unlink()   # what a crash before the last write leaves
    with pytest.raises(FixPackageError, match=r"package\.json is missing: no fix package here"):
        FixPackage.load(tmp_path / "pkg")


def test_tampered_blob_is_detected(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    (tmp_path / "pkg" / "files" / sha(NEW_CONF)).write_bytes(b"listen 80\nworkers 9\n")
    with pytest.raises(FixPackageError) as info:
        FixPackage.load(tmp_path / "pkg")
    assert f"content of {CONF} (files/{sha(NEW_CONF)}) does not match its hash" in info.value.message


def test_missing_blob_is_detected(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    (tmp_path / "pkg" / "files" / sha(NEW_CONF)).unlink()
    with pytest.raises(FixPackageError, match="is missing"):
        FixPackage.load(tmp_path / "pkg")


def test_edited_operations_are_detected(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    path = tmp_path / "pkg" / "package.json"
    document = json.loads(path.read_bytes())
    document["operations"][0]["mode"] = 0o4777
    path.write_text(json.dumps(document))
    with pytest.raises(FixPackageError, match="operations do not match operations_sha256"):
        FixPackage.load(tmp_path / "pkg")


def test_malformed_operation_names_its_index(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    path = tmp_path / "pkg" / "package.json"
    document = json.loads(path.read_bytes())
    document["operations"][1]["expect_sha256"] = True
    path.write_text(json.dumps(document))
    with pytest.raises(FixPackageError, match=r"operations\[1\]\.expect_sha256: expected a string"):
        FixPackage.load(tmp_path / "pkg")


def test_load_against_narrower_roots_is_refused(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    with pytest.raises(FixPackageError, match=r"outside the allowed roots \(/etc/app\)"):
        FixPackage.load(tmp_path / "pkg", allowed_roots=["/etc/app"])


def test_saving_a_different_package_over_one_is_refused(tmp_path: Path) -> None:
    _package().save(tmp_path / "pkg")
    with pytest.raises(FixPackageError, match="already holds a different fix package"):
        _package().save(tmp_path / "pkg")


def test_save_into_unwritable_place_raises_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StateError):
        _package().save(tmp_path / "file" / "pkg")


def test_package_without_daemon_reload_for_a_unit_file_cannot_exist() -> None:
    pkg = _package()
    ops = tuple(op for op in pkg.operations if op.name != "daemon_reload")
    with pytest.raises(FixPackageError, match="a unit file changes but the package has no daemon_reload"):
        FixPackage(pkg.id, pkg.created_at, ops, pkg.blobs, {}, {}, {}, False, pkg.allowed_roots)


def test_package_digest_is_recorded_and_survives_a_round_trip(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    document = json.loads((tmp_path / "pkg" / "package.json").read_bytes())
    assert document["package_sha256"] == pkg.package_sha256
    assert pkg.as_dict()["package_sha256"] == pkg.package_sha256     # the session's evidence too
    assert FixPackage.load(tmp_path / "pkg").package_sha256 == pkg.package_sha256


def test_package_digest_covers_what_is_applied() -> None:
    pkg = _package()
    other_roots = FixPackage(**{**_fields(pkg), "allowed_roots": ("/etc", "/var/log", "/srv")})
    assert other_roots.package_sha256 != pkg.package_sha256
    other_evidence = FixPackage(**{**_fields(pkg), "validation": {"passed": False}})
    assert other_evidence.package_sha256 != pkg.package_sha256


def test_edited_package_digest_is_detected(tmp_path: Path) -> None:
    pkg = _package()
    pkg.save(tmp_path / "pkg")
    path = tmp_path / "pkg" / "package.json"
    document = json.loads(path.read_bytes())
    document["reboot_required"] = not document["reboot_required"]   # not covered by operations_sha256
    path.write_text(json.dumps(document))
    with pytest.raises(FixPackageError) as info:
        FixPackage.load(tmp_path / "pkg")
    assert "package_sha256" in info.value.message
    assert "does not match the package" in info.value.message
    assert str(path) in info.value.message


def _fields(pkg: FixPackage) -> dict[str, object]:
    return {name: getattr(pkg, name) for name in pkg.__dataclass_fields__}


def test_package_digest_is_the_same_in_memory_and_loaded_back(tmp_path: Path) -> None:
    # Evidence as the pipeline hands it over: tuples, int keys (2 sorts before 10 as an int, after it
    # as a string), a Path. Only the JSON form counts, or a good package would be refused at apply.
    fields = _fields(_package())
    pkg = FixPackage(**{**fields, "diagnosis": {"ranked": ("a", "b"), "scores": {2: 0.5, 10: 1.0},
                                                 "log": tmp_path / "x.log"}})
    pkg.save(tmp_path / "pkg")
    assert FixPackage.load(tmp_path / "pkg").package_sha256 == pkg.package_sha256
