"""Merging discovered, configured and baseline components; the discovery cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.components import record
from orchestrator.components.config import ComponentFile, WatchConfig, WatchFile, build_watch_config
from orchestrator.discover import cache
from orchestrator.discover.resolve import merge, resolve_watch
from orchestrator.errors import AgentError
from orchestrator.model import Component
from orchestrator.state.db import open_state
from tests.unit.discover.fakes import DiscoveryHost
from tests.unit.fake_agent import FakeAgent, file_node

DISCOVERED_NGINX = Component("nginx", vital=True, units=("nginx.service",), config_paths=("/etc/nginx",),
                             ports=(80,), origin="discovered")
REDIS = Component("redis-server", vital=True, units=("redis-server.service",), ports=(6379,),
                  origin="discovered")


def watch(*components: ComponentFile, **kw: object) -> WatchConfig:
    return build_watch_config(WatchFile(extend_defaults=False, components=list(components), **kw))


def test_a_configured_component_the_target_lacks_is_absent_not_watched() -> None:
    configured = watch(ComponentFile(name="nginx", units=["nginx.service"],
                                     http=[{"url": "http://127.0.0.1:80/"}]))
    resolved, absent = merge(configured, [REDIS], present=[])
    assert [c.name for c in resolved.components] == ["redis-server"] and absent == ("nginx",)
    assert resolved.resolved


def test_configured_overrides_discovered_and_keeps_its_name_and_probes() -> None:
    configured = watch(ComponentFile(name="web", units=["nginx.service"], vital=False,
                                     config_test=["nginx", "-T"], http=[{"url": "http://127.0.0.1:80/"}]))
    (web,), _ = merge(configured, [DISCOVERED_NGINX], present=[])[0].components, None
    assert (web.name, web.vital, web.config_test, web.origin) == ("web", False, ("nginx", "-T"),
                                                                   "configured,discovered")
    assert web.config_paths == ("/etc/nginx",) and web.ports == (80,) and len(web.http) == 1


def test_an_unset_vital_is_decided_by_discovery() -> None:
    configured = watch(ComponentFile(name="redis-server"))
    (comp,) = merge(configured, [REDIS], present=[])[0].components
    assert comp.vital and comp.units == ("redis-server.service",)


def test_ignore_drops_components_by_name_or_unit() -> None:
    configured = watch(ignore=["redis-server.service", "nginx"])
    resolved, _ = merge(configured, [REDIS, DISCOVERED_NGINX], present=[])
    assert resolved.components == ()


def test_a_component_the_baseline_recorded_stays_watched_when_it_vanishes() -> None:
    resolved, absent = merge(watch(ComponentFile(name="nginx", units=["nginx.service"])), [],
                             present=[], baseline=[DISCOVERED_NGINX])
    assert [c.name for c in resolved.components] == ["nginx"] and absent == ()


def test_the_baseline_keeps_ports_and_vitality_of_a_service_found_down() -> None:
    down = Component("redis-server", vital=False, units=("redis-server.service",), origin="discovered")
    (comp,) = merge(watch(), [down], present=[], baseline=[REDIS])[0].components
    assert (comp.ports, comp.vital) == ((6379,), True)


def test_components_without_units_always_exist() -> None:
    resolved, absent = merge(watch(ComponentFile(name="boot", fstab=["/etc/fstab"])), [], present=[])
    assert [c.name for c in resolved.components] == ["boot"] and absent == ()


def test_record_round_trip_and_refusal(tmp_path: Path) -> None:
    comp = Component("app", units=("app.service",), config_paths=("/etc/app",), ports=(8080,), user="app",
                     writable_paths=("/var/lib/app",), sockets=("app.socket",), origin="discovered")
    assert record.from_json([record.to_json(comp)], source="t") == [comp]
    bad = [{**record.to_json(comp), "config_paths": ["relative"]}]
    try:
        record.from_json(bad, source="cache")
    except Exception as exc:   # noqa: BLE001 - the type is asserted below
        assert type(exc).__name__ == "StateError" and "cache" in str(exc)
    else:
        raise AssertionError("a relative path was accepted")


def agent_with_units(mtime_file: bytes = b"a") -> FakeAgent:
    return FakeAgent(files={"/etc/systemd/system/x.service": file_node(mtime_file),
                            "/var/lib/dpkg/status": file_node(b"Package: x\n")},
                     dirs=["/etc/systemd/system", "/usr/lib/systemd/system"])


def test_fingerprint_changes_with_unit_files_and_configured_units() -> None:
    first = cache.fingerprint(agent_with_units(), ["a.service"])
    assert first == cache.fingerprint(agent_with_units(), ["a.service"])
    assert first != cache.fingerprint(agent_with_units(b"longer"), ["a.service"])
    assert first != cache.fingerprint(agent_with_units(), ["b.service"])


def test_discovery_is_cached_until_the_fingerprint_changes(tmp_path: Path) -> None:
    db = open_state(tmp_path / "state" / "state.db")
    host = DiscoveryHost()
    configured = build_watch_config(None)
    first = resolve_watch(configured, "vm-x", host.transport(), agent_with_units(), db=db,
                          baselines_dir=tmp_path / "baselines")
    calls = len(host.calls)
    again = resolve_watch(configured, "vm-x", host.transport(), agent_with_units(), db=db,
                          baselines_dir=tmp_path / "baselines")
    assert (first.from_cache, again.from_cache) == (False, True) and len(host.calls) == calls
    assert again.watch.components == first.watch.components
    changed = resolve_watch(configured, "vm-x", host.transport(), agent_with_units(b"edited"), db=db,
                            baselines_dir=tmp_path / "baselines")
    assert not changed.from_cache and len(host.calls) > calls


def test_a_first_discovery_whose_fingerprint_fails_is_used_but_not_cached(tmp_path: Path) -> None:
    """On a target with nothing cached the fingerprint is taken while discovery runs: its failure
    costs the cache, never the discovery."""
    db = open_state(tmp_path / "state" / "state.db")
    host = DiscoveryHost()
    agent = agent_with_units()
    agent.errors["manifest"] = AgentError("the agent died")
    first = resolve_watch(build_watch_config(None), "vm-x", host.transport(), agent, db=db,
                          baselines_dir=tmp_path / "baselines")
    assert not first.from_cache and first.watch.components and cache.load(db, "vm-x") is None


def test_an_old_or_unreadable_cache_entry_is_read_again(tmp_path: Path) -> None:
    db = open_state(tmp_path / "state" / "state.db")
    entry = cache.Cached("fp", (REDIS,), (), frozenset(), time.time() - cache.MAX_AGE_S - 1)
    cache.store(db, "t", entry)
    loaded = cache.load(db, "t")
    assert loaded is not None and not loaded.is_fresh("fp") and loaded.components == (REDIS,)
    with db.write() as tx:
        tx.execute("UPDATE discovery SET components = ?", (json.dumps([{"name": "BAD"}]),))
    assert cache.load(db, "t") is None


def test_no_systemd_drops_configured_services_but_a_timeout_keeps_them(tmp_path: Path) -> None:
    configured = build_watch_config(None)   # the shipped overrides: nginx, sampleapp, boot
    none = resolve_watch(configured, "local", DiscoveryHost(has_systemd=False).transport(),
                         agent_with_units(), db=None, baselines_dir=tmp_path)
    assert [c.name for c in none.watch.components] == ["boot"]
    assert "nginx" in none.absent and any("systemd" in n for n in none.notes)
    flaky = resolve_watch(configured, "local", DiscoveryHost(show_fails=True).transport(),
                          agent_with_units(), db=None, baselines_dir=tmp_path)
    assert {"nginx", "sampleapp"} <= {c.name for c in flaky.watch.components}
    assert flaky.absent == ()


def test_the_template_resolves_to_its_services_with_shipped_overrides(tmp_path: Path) -> None:
    resolution = resolve_watch(build_watch_config(None), "vm-x", DiscoveryHost().transport(),
                               agent_with_units(), db=None, baselines_dir=tmp_path)
    comps = {c.name: c for c in resolution.watch.components}
    assert list(comps)[:3] == ["nginx", "sampleapp", "boot"]
    assert {"sshd", "cron", "rsyslog"} <= set(comps) and comps["sshd"].origin == "discovered"
    assert comps["nginx"].config_test == ("nginx", "-t") and comps["nginx"].http
    assert comps["sampleapp"].jsonl_logs and comps["sampleapp"].origin == "configured,discovered"
    assert comps["dbus"].origin == "discovered" and resolution.absent == ()


def write_baseline(baselines: Path, target: str, *, units: object, entries: object,
                   components: list[Component]) -> None:
    import datetime as dt

    from orchestrator.baseline import layout

    root = baselines / target
    root.mkdir(parents=True)
    new = layout.new_baseline_dir(root, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    layout.write_json(new.path / layout.UNITS_JSON, {"units": units})
    layout.write_json(new.path / layout.MANIFEST_JSON, {"entries": entries})
    layout.write_json(new.path / layout.COMPONENTS_JSON,
                      {"components": [record.to_json(c) for c in components]})
    layout.write_json(new.path / layout.BASELINE_JSON, {})
    layout.set_latest(root, new.name)


def test_the_baseline_passes_unit_states_and_modes_to_the_probes(tmp_path: Path) -> None:
    write_baseline(tmp_path, "vm-x", components=[REDIS],
                   units={"nginx.service": {"component": "nginx", "ActiveState": "active",
                                            "UnitFileState": "enabled", "unavailable": None},
                          "x.service": {"ActiveState": None, "UnitFileState": None}},
                   entries=[{"path": "/etc/nginx/nginx.conf", "type": "file", "mode": 0o644, "uid": 0,
                             "gid": 0}, {"path": "/bad", "mode": "0644"}])
    resolution = resolve_watch(build_watch_config(None), "vm-x", DiscoveryHost().transport(),
                               agent_with_units(), db=None, baselines_dir=tmp_path)
    watch = resolution.watch
    assert watch.baseline_units == {"nginx.service": ("active", "enabled")}
    assert watch.baseline_modes == {"/etc/nginx/nginx.conf": ("file", 0o644, 0, 0)}
    assert "redis-server" in {c.name for c in watch.components}      # recorded, not discovered


def test_an_unreadable_baseline_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "vm-x").mkdir()
    (tmp_path / "vm-x" / "latest.json").write_text("{broken")
    resolution = resolve_watch(build_watch_config(None), "vm-x", DiscoveryHost().transport(),
                               agent_with_units(), db=None, baselines_dir=tmp_path)
    assert resolution.watch.baseline_units == {} and resolution.watch.components


def test_without_discovery_only_the_configured_units_are_asked_about(tmp_path: Path) -> None:
    host = DiscoveryHost()
    configured = watch(ComponentFile(name="nginx", units=["nginx.service"]),
                       ComponentFile(name="redis", units=["missing-redis.service"]), discover=False)
    resolution = resolve_watch(configured, "vm-x", host.transport(), agent_with_units(), db=None,
                               baselines_dir=tmp_path)
    assert [c.name for c in resolution.watch.components] == ["nginx"] and resolution.absent == ("redis",)
    assert [c[:2] for c in host.calls] == [("systemctl", "show")]
    none = resolve_watch(configured, "local", DiscoveryHost(has_systemd=False).transport(),
                         agent_with_units(), db=None, baselines_dir=tmp_path)
    assert none.watch.components == () and none.absent == ("nginx", "redis")


def test_ignored_paths_leave_discovered_and_configured_components_after_the_merge() -> None:
    discovered = Component("nginx", units=("nginx.service",),
                           config_paths=("/etc/nginx", "/etc/default/nginx"),
                           writable_paths=("/var/lib/nginx",), log_paths=("/var/log/nginx",),
                           origin="discovered")
    configured = watch(ComponentFile(name="web", units=["nginx.service"], data_paths=["/srv/www/cache"]),
                       ignore_paths=["/etc/default/nginx", "/var/lib/nginx", "/srv/www"])
    (web,) = merge(configured, [discovered], present=[])[0].components
    assert (web.config_paths, web.writable_paths, web.data_paths) == (("/etc/nginx",), (), ())
    assert web.log_paths == ("/var/log/nginx",)


def test_watch_list_json_shows_the_ignored_names_and_paths() -> None:
    from orchestrator.discover.resolve import Resolution, watch_summary
    summary = watch_summary(Resolution(watch(ignore=["cron"], ignore_paths=["/srv/cache"])))
    assert (summary["ignore"], summary["ignore_paths"]) == (["cron"], ["/srv/cache"])
