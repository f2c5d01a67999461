"""The `watch:` section: defaults, extending or replacing them, and what a config file may not say."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.components.config import (
    ComponentFile,
    HttpCheckFile,
    Thresholds,
    ThresholdsFile,
    WatchConfig,
    WatchFile,
    build_watch_config,
)
from orchestrator.components.defaults import DEFAULT_COMPONENTS
from orchestrator.config.settings import load_settings
from orchestrator.errors import ConfigError
from orchestrator.model import Component, HttpCheck

DEFAULT_NAMES = ["nginx", "sampleapp", "boot"]   # the rest is discovered


def names(config: WatchConfig) -> list[str]:
    return [c.name for c in config.components]


def test_no_watch_section_means_the_defaults() -> None:
    config = build_watch_config(None)
    assert config.components == DEFAULT_COMPONENTS
    assert names(config) == DEFAULT_NAMES
    assert config.mounts == ("/",)
    assert config.thresholds == Thresholds()


def test_an_empty_watch_section_means_the_defaults_too() -> None:
    assert build_watch_config(WatchFile()) == build_watch_config(None)


def test_extending_replaces_a_default_of_the_same_name_and_appends_new_ones() -> None:
    watch = WatchFile(components=[
        ComponentFile(name="redis", units=["redis-server.service"], config_paths=["/etc/redis"]),
        ComponentFile(name="nginx", units=["nginx.service"], config_paths=["/srv/nginx"], vital=False),
    ])
    config = build_watch_config(watch)
    assert names(config) == ["sampleapp", "boot", "redis", "nginx"]
    assert config.component("nginx") == Component("nginx", vital=False, units=("nginx.service",),
                                                  config_paths=("/srv/nginx",))
    assert config.component("redis").units == ("redis-server.service",)


def test_not_extending_replaces_every_default() -> None:
    watch = WatchFile(extend_defaults=False, components=[ComponentFile(name="redis")])
    assert names(build_watch_config(watch)) == ["redis"]


def test_mounts_and_thresholds_are_carried_over() -> None:
    watch = WatchFile(mounts=["/", "/var"], thresholds=ThresholdsFile(disk_critical_pct=80, http_timeout_s=2))
    config = build_watch_config(watch)
    assert config.mounts == ("/", "/var")
    assert config.thresholds == Thresholds(disk_critical_pct=80.0, http_timeout_s=2.0)


def test_component_file_converts_every_field() -> None:
    component = ComponentFile(
        name="app", vital=False, units=["app.service"], config_paths=["/etc/app"],
        unit_paths=["/etc/systemd/system/app.service.d"], data_paths=["/var/lib/app"],
        config_test=["app", "--check"], http=[HttpCheckFile(url="http://localhost:8000/", expect_status=204)],
        jsonl_logs=["/var/lib/app/log.jsonl"], packages=["app"], log_paths=["/var/log/app"],
        fstab=["/etc/fstab"],
    ).to_component()
    assert component == Component(
        "app", False, ("app.service",), ("/etc/app",), ("/etc/systemd/system/app.service.d",),
        ("/var/lib/app",), ("app", "--check"), (HttpCheck("http://localhost:8000/", 204),),
        ("/var/lib/app/log.jsonl",), ("app",), ("/var/log/app",), ("/etc/fstab",),
    )


def test_the_boot_default_watches_fstab_and_has_nothing_to_restart() -> None:
    boot = build_watch_config(None).component("boot")
    assert boot == Component("boot", vital=True, config_paths=("/etc/fstab",), fstab=("/etc/fstab",),
                             origin="builtin")
    assert (boot.units, boot.http, boot.config_test) == ((), (), ())


def test_unknown_component_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="postgres"):
        build_watch_config(None).component("postgres")


# -- through a config file ------------------------------------------------------------------------

def load(tmp_path: Path, text: str) -> WatchConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(env={"VMREPAIR_CONFIG": str(path)}).watch


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.file == str(tmp_path / "config.yaml")
    return info.value.message


def test_a_config_file_watch_section_is_used(tmp_path: Path) -> None:
    config = load(tmp_path, "watch:\n  extend_defaults: false\n  components:\n"
                            "    - name: web\n      units: [web.service]\n"
                            "      http: [{url: 'http://127.0.0.1:8080/health'}]\n")
    assert config.components == (Component("web", units=("web.service",),
                                            http=(HttpCheck("http://127.0.0.1:8080/health"),)),)


def test_unknown_key_in_a_component_names_file_and_path(tmp_path: Path) -> None:
    message = error(tmp_path, "watch:\n  components:\n    - name: web\n      bogus: 1\n")
    assert message == f"{tmp_path / 'config.yaml'}: watch.components[0].bogus: unknown key " \
                      "(not allowed here; check spelling)"


def test_unknown_key_in_thresholds_names_its_path(tmp_path: Path) -> None:
    message = error(tmp_path, "watch:\n  thresholds:\n    disk_critcal_pct: 80\n")
    assert message == f"{tmp_path / 'config.yaml'}: watch.thresholds.disk_critcal_pct: unknown key " \
                      "(not allowed here; check spelling)"


@pytest.mark.parametrize(
    "url",
    ["http://example.org/", "https://127.0.0.1/", "http://127.0.0.1.evil.example/", "http://localhost@evil/",
     "http://localhost:80@evil/", "http://10.0.0.1:80/", "http://[::2]/", "http://127.0.0.1"],
)
def test_http_checks_must_stay_on_loopback(tmp_path: Path, url: str) -> None:
    message = error(tmp_path, f"watch:\n  components:\n    - name: web\n      http: [{{url: '{url}'}}]\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: watch.components[0].http[0].url: "
                              "String should match pattern")


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://127.0.1.1:8080/health", "http://localhost/",
                                 "http://[::1]:80/ready"])
def test_loopback_http_checks_are_accepted(url: str) -> None:
    assert HttpCheckFile(url=url).url == url


@pytest.mark.parametrize("name", ["Web", "-web", "web app", "", "a" * 42])
def test_component_names_are_checked(tmp_path: Path, name: str) -> None:
    message = error(tmp_path, f"watch:\n  components:\n    - name: '{name}'\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: watch.components[0].name: "
                              "String should match pattern")


@pytest.mark.parametrize("path", ["etc/fstab", "", "fstab"])
def test_fstab_paths_must_be_absolute(tmp_path: Path, path: str) -> None:
    message = error(tmp_path, f"watch:\n  components:\n    - name: chroot\n      fstab: ['{path}']\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: watch.components[0].fstab[0]: "
                              "String should match pattern")


def test_a_config_file_can_watch_another_fstab(tmp_path: Path) -> None:
    config = load(tmp_path, "watch:\n  components:\n    - name: chroot\n"
                            "      fstab: [/srv/chroot/etc/fstab]\n")
    assert config.component("chroot").fstab == ("/srv/chroot/etc/fstab",)


def test_memory_thresholds_come_from_the_config_file(tmp_path: Path) -> None:
    config = load(tmp_path, "watch:\n  thresholds:\n    memory_available_warning_pct: 15\n"
                            "    memory_available_critical_pct: 3\n    psi_some_avg60_warning: 50\n"
                            "    psi_full_avg60_warning: 20\n    oom_window_minutes: 30\n")
    assert config.thresholds == Thresholds(
        memory_available_warning_pct=15.0, memory_available_critical_pct=3.0, psi_some_avg60_warning=50.0,
        psi_full_avg60_warning=20.0, oom_window_minutes=30)


@pytest.mark.parametrize(("line", "problem"), [
    ("oom_window_minutes: 0", "watch.thresholds.oom_window_minutes: Input should be greater than or equal "
                              "to 1"),
    ("psi_full_avg60_warning: 101", "watch.thresholds.psi_full_avg60_warning: Input should be less than or "
                                    "equal to 100"),
    ("memory_available_warning_pct: 0", "watch.thresholds.memory_available_warning_pct: Input should be "
                                        "greater than 0"),
])
def test_memory_thresholds_out_of_range_name_their_path(tmp_path: Path, line: str, problem: str) -> None:
    message = error(tmp_path, f"watch:\n  thresholds:\n    {line}\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: {problem}")


def test_restart_loop_thresholds_come_from_the_config_file(tmp_path: Path) -> None:
    config = load(tmp_path, "watch:\n  thresholds:\n    restart_loop_failures: 5\n"
                            "    restart_loop_minutes: 30\n")
    assert (config.thresholds.restart_loop_failures, config.thresholds.restart_loop_minutes) == (5, 30)
    assert (Thresholds().restart_loop_failures, Thresholds().restart_loop_minutes) == (3, 10)


@pytest.mark.parametrize(("line", "problem"), [
    ("restart_loop_failures: 1", "watch.thresholds.restart_loop_failures: Input should be greater than or "
                                 "equal to 2"),
    ("restart_loop_minutes: 0", "watch.thresholds.restart_loop_minutes: Input should be greater than or "
                                "equal to 1"),
    ("restart_loop_minutes: 1441", "watch.thresholds.restart_loop_minutes: Input should be less than or "
                                   "equal to 1440"),
])
def test_restart_loop_thresholds_out_of_range_name_their_path(tmp_path: Path, line: str, problem: str,
                                                              ) -> None:
    message = error(tmp_path, f"watch:\n  thresholds:\n    {line}\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: {problem}")
