"""Doctor checks declared as data: each probe against a temporary state dir and test:///default."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.settings import Settings
from orchestrator.doctor.checks import CHECKS, Check, CheckResult, run_checks
from orchestrator.errors import ConfigError
from orchestrator.imaging import keys
from orchestrator.imaging.store import BuiltImage


@pytest.fixture
def app(settings: Settings, libvirt_conn: object) -> Iterator[App]:
    application = App(settings)
    yield application
    application.close()


def _check(name: str) -> Check:
    (check,) = [c for c in CHECKS if c.name == name]
    return check


def test_check_names_are_unique_and_every_check_has_a_remedy() -> None:
    names = [c.name for c in CHECKS]
    assert len(set(names)) == len(names)
    assert all(c.remedy for c in CHECKS)
    assert {c.name for c in CHECKS if c.vital} == {"libvirt", "qemu", "image-store", "template",
                                                    "key-pair"}


def test_passing_check_has_no_remedy(app: App) -> None:
    result = Check("x", True, lambda _app: (True, "fine"), "do something").run(app)
    assert result == CheckResult("x", True, True, "fine", "")
    assert result.as_dict() == {"name": "x", "vital": True, "ok": True, "detail": "fine",
                                "remedy": ""}


def test_failing_check_carries_its_remedy(app: App) -> None:
    result = Check("x", False, lambda _app: (False, "broken"), "fix it").run(app)
    assert result == CheckResult("x", False, False, "broken", "fix it")


def test_errors_of_the_tree_become_failed_checks(app: App) -> None:
    def probe(_app: App) -> tuple[bool, str]:
        raise ConfigError("config.yaml: ssh.bogus: unknown key")

    result = Check("x", True, probe, "fix the config").run(app)
    assert (result.ok, result.detail, result.remedy) == (
        False, "config.yaml: ssh.bogus: unknown key", "fix the config")


def test_os_errors_become_failed_checks(app: App) -> None:
    def probe(_app: App) -> tuple[bool, str]:
        raise PermissionError(13, "Permission denied")

    assert Check("x", True, probe, "r").run(app).detail == "Permission denied"


def test_libvirt_check(app: App) -> None:
    result = _check("libvirt").run(app)
    assert result.ok
    assert result.detail.startswith("libvirt ")
    assert result.detail.endswith(" at test:///default")


def test_libvirt_check_fails_with_the_daemon_remedy(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    uri = f"qemu+unix:///system?socket={tmp_path / 'absent-sock'}"
    app = App(make_settings(libvirt_uri=uri))
    result = _check("libvirt").run(app)
    assert not result.ok
    assert result.detail.startswith(f"cannot connect to libvirt at {uri}")
    assert "libvirtd" in result.remedy


def test_store_check_creates_and_probes_the_store(app: App) -> None:
    result = _check("image-store").run(app)
    assert str(app.settings.image_store) in result.detail
    assert app.settings.image_store.is_dir()
    assert list(app.settings.image_store.iterdir()) == []  # the probe file is gone


def test_template_check(app: App, make_built_image: Callable[..., BuiltImage]) -> None:
    not_built = _check("template").run(app)
    assert not not_built.ok
    assert "'debian-12' is not built" in not_built.detail

    built = make_built_image(app.settings.image_store)
    assert _check("template").run(app).ok
    built.kernel.unlink()
    missing = _check("template").run(app)
    assert (missing.ok, missing.detail) == (False, "debian-12: artifacts missing: vmlinuz")


def test_key_pair_check(app: App, make_built_image: Callable[..., BuiltImage]) -> None:
    missing = _check("key-pair").run(app)
    assert not missing.ok
    assert "does not exist" in missing.detail

    public = keys.ensure_client_key(app.settings.client_key)
    ok = _check("key-pair").run(app)
    assert ok.ok
    assert ok.detail == f"{app.settings.client_key} 0600, {keys.fingerprint(public)}"

    app.settings.client_key.chmod(0o640)
    assert "mode 0640" in _check("key-pair").run(app).detail


def test_key_pair_check_detects_a_key_the_image_does_not_trust(
    app: App, make_built_image: Callable[..., BuiltImage]
) -> None:
    keys.ensure_client_key(app.settings.client_key)
    built = make_built_image(app.settings.image_store)  # trusts another, freshly made key
    result = _check("key-pair").run(app)
    assert not result.ok
    assert "is not the key the image trusts" in result.detail
    assert built.manifest.client_key_fingerprint in result.detail


def test_key_pair_check_accepts_the_key_the_image_trusts(
    app: App, make_built_image: Callable[..., BuiltImage]
) -> None:
    public = keys.ensure_client_key(app.settings.client_key)
    make_built_image(app.settings.image_store, client_public=public)
    assert _check("key-pair").run(app).ok


def test_acceleration_check_is_optional_and_explains(app: App) -> None:
    result = _check("acceleration").run(app)  # settings force TCG
    assert (result.vital, result.ok) == (False, False)
    assert result.detail == "forced by config (vm.accel: tcg)"
    assert "TCG works" in result.remedy


def test_load_tool_check(app: App, tmp_path: Path) -> None:
    assert _check("load-tool").run(app).detail == "stress-ng in template debian-12"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "debian-12.yaml").write_text(
        "name: debian-12\nsuite: bookworm\nrecipe: debian-12\npackages: [systemd-sysv]\n"
        "memory_mib: 512\nvcpus: 1\ndisk_size_gib: 1\nkernel_cmdline: root=/dev/vda\n"
    )
    bare = App(dataclasses.replace(app.settings, templates_dir=templates))
    result = _check("load-tool").run(bare)
    assert (result.ok, result.detail) == (False, "template debian-12 ships no load tool (stress-ng)")


def test_leftovers_check(app: App) -> None:
    assert _check("leftovers").run(app).detail == "none"
    (app.settings.vms_dir / "old").mkdir(parents=True)
    result = _check("leftovers").run(app)
    assert (result.ok, result.detail, result.remedy) == (
        False, "stale VMs: old", "run `vmrepair vm reap`")


def test_run_checks_runs_each_check_once_in_order(app: App) -> None:
    seen: list[str] = []

    def probe(name: str) -> Callable[[App], tuple[bool, str]]:
        def run(_app: App) -> tuple[bool, str]:
            seen.append(name)
            return True, name
        return run

    table = (Check("a", True, probe("a"), "r"), Check("b", False, probe("b"), "r"))
    assert [r.name for r in run_checks(app, table)] == ["a", "b"]
    assert seen == ["a", "b"]
