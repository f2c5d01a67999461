"""The data files ship inside the package: found through importlib.resources, declared as package data,
and (when a build backend is at hand offline) really present, with their exec bits, in a built wheel."""

from __future__ import annotations

import fnmatch
import glob
import importlib.metadata
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from orchestrator import resources
from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.errors import ConfigError

PACKAGE_DIR = PROJECT_ROOT / "orchestrator"
#: setuptools learned PEP 639 license strings (used in pyproject.toml) in 77.
MIN_SETUPTOOLS = (77,)


def _project_files(kind: str) -> set[str]:
    """Every file of the top-level ``kind`` directory, as a path relative to it (bytecode excluded)."""
    root = PROJECT_ROOT / kind
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.mark.parametrize(("lookup", "expected"), [
    (resources.shipped_playbooks_dir, {"fstab.yaml", "nginx-config.yaml", "playbook.schema.json"}),
    (resources.shipped_templates_dir, {"debian-12.yaml"}),
    (resources.shipped_recipes_dir, {"debian-12/customize.sh", "debian-12/overlay/etc/hostname",
                                     "debian-12/overlay/opt/sampleapp/sampleapp/app.py"}),
])
def test_shipped_dirs_exist_and_hold_the_shipped_files(lookup: object, expected: set[str]) -> None:
    assert callable(lookup)
    directory = lookup()
    assert isinstance(directory, Path) and directory.is_dir()
    assert directory.parent == PACKAGE_DIR / resources.DATA_DIR
    found = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert expected <= found


@pytest.mark.parametrize("kind", resources.DATA_KINDS)
def test_package_data_is_the_top_level_directory(kind: resources.DataKind) -> None:
    # The top-level directories stay the one copy that is edited: the package holds relative links.
    link = PACKAGE_DIR / resources.DATA_DIR / kind
    assert link.is_symlink()
    assert link.readlink() == Path("..", "..", kind)
    assert resources.shipped_dir(kind).resolve() == PROJECT_ROOT / kind
    assert _project_files(kind)


def test_a_missing_data_directory_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "orchestrator").mkdir()
    monkeypatch.setattr(resources.resources, "files", lambda package: tmp_path / package)
    with pytest.raises(ConfigError) as info:
        resources.shipped_dir("playbooks")
    missing = tmp_path / "orchestrator" / "data" / "playbooks"
    assert info.value.message == f"{missing}: shipped playbooks directory not found"
    assert info.value.remedy == "reinstall vmrepair; its package data is incomplete"


def _package_data_patterns() -> tuple[list[str], list[str]]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config["package-data"]["orchestrator"], config.get("exclude-package-data", {}).get(
        "orchestrator", [])


@pytest.mark.parametrize("kind", resources.DATA_KINDS)
def test_package_data_patterns_cover_every_data_file(kind: str) -> None:
    # What setuptools does with the patterns (glob below the package dir, then the excludes), without
    # a build: a new file in a new subdirectory must not fall out of the wheel unnoticed.
    include, exclude = _package_data_patterns()
    matched = {Path(f).relative_to(PACKAGE_DIR).as_posix()
               # glob.glob, not Path.glob: setuptools expands package-data patterns with glob.
               for pattern in include
               for f in glob.glob(str(PACKAGE_DIR / pattern), recursive=True)  # noqa: PTH207
               if Path(f).is_file()}
    kept = {f for f in matched if not any(fnmatch.fnmatch(f, pattern) for pattern in exclude)}
    prefix = f"{resources.DATA_DIR}/{kind}/"
    assert {f.removeprefix(prefix) for f in kept if f.startswith(prefix)} == _project_files(kind)


def _setuptools_version() -> tuple[int, ...] | None:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def _wheel_skip_reason() -> str | None:
    version = _setuptools_version()
    if version is None or version < MIN_SETUPTOOLS:
        found = "none" if version is None else ".".join(map(str, version))
        return (f"building the wheel offline needs setuptools>={MIN_SETUPTOOLS[0]} in this environment "
                f"(found {found}); build isolation would download it")
    try:
        importlib.metadata.version("wheel")
    except importlib.metadata.PackageNotFoundError:
        return "building the wheel offline needs the 'wheel' package in this environment"
    return None


def test_built_wheel_contains_every_data_file_with_its_exec_bit(tmp_path: Path) -> None:
    reason = _wheel_skip_reason()
    if reason:
        pytest.skip(reason)
    # Build from a copy: pip builds in the source tree and would leave build/ behind in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(PROJECT_ROOT / name, source / name)
    for name in ("orchestrator", *resources.DATA_KINDS):
        shutil.copytree(PROJECT_ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("vmrepair-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    for kind in resources.DATA_KINDS:
        for rel in _project_files(kind):
            name = f"orchestrator/{resources.DATA_DIR}/{kind}/{rel}"
            assert name in modes, f"{name} is missing from the wheel"
            is_exec = bool((PROJECT_ROOT / kind / rel).stat().st_mode & stat.S_IXUSR)
            assert bool(modes[name] & stat.S_IXUSR) == is_exec, name
    assert not [name for name in modes if "__pycache__" in name or name.endswith(".pyc")]
