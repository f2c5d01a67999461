"""symlinks:<component> probes: dangling, looping and far-away links under config_paths, on the shared
FakeAgent and on the real agent over LocalTransport in a temporary directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.agent.api import manifest_args
from orchestrator.agent.client import RemoteAgent
from orchestrator.detect import symlinks
from orchestrator.detect.symlinks import link_target, probe_symlinks
from orchestrator.errors import AgentError
from orchestrator.model import Component, IssueKind, Severity
from orchestrator.transport.local import LocalTransport
from tests.unit.fake_agent import FakeAgent, Node, call_brief

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",))
APACHE = Component("apache2", vital=False, config_paths=("/etc/apache2",))


def nginx_host() -> FakeAgent:
    """/etc/nginx as bookworm's nginx leaves it: a site enabled by an absolute link, a module by a link
    out of the config tree."""
    return FakeAgent(files={"/etc/nginx/nginx.conf": b"include /etc/nginx/sites-enabled/*;\n",
                            "/etc/nginx/sites-available/default": b"server { listen 80; }\n",
                            "/usr/share/nginx/modules-available/mod-stream.conf": b"load_module x;\n"},
                     symlinks={"/etc/nginx/sites-enabled/default": "/etc/nginx/sites-available/default",
                               "/etc/nginx/modules-enabled/50-mod-stream.conf":
                                   "/usr/share/nginx/modules-available/mod-stream.conf"},
                     record=call_brief)


def manifests(agent: FakeAgent) -> list[str]:
    return [paths for method, paths in agent.calls if method == "manifest"]


def test_healthy_links_pass_and_only_far_targets_are_looked_up() -> None:
    agent = nginx_host()
    result = probe_symlinks(agent, NGINX)
    assert (result.ok, result.probe, result.kind) == (True, "symlinks:nginx", IssueKind.PATH_MISSING)
    assert result.summary == "nginx: none of 2 config symlinks dangles"
    assert manifests(agent) == ["/etc/nginx", "/usr/share/nginx/modules-available/mod-stream.conf"]


def test_a_deleted_site_leaves_a_dangling_link_found_by_a_second_lookup() -> None:
    agent = nginx_host()
    del agent.fs["/etc/nginx/sites-available/default"]
    result = probe_symlinks(agent, NGINX)
    assert (result.ok, result.severity, result.kind) == (False, Severity.CRITICAL, IssueKind.PATH_MISSING)
    assert result.summary == ("nginx: config symlink /etc/nginx/sites-enabled/default -> "
                              "/etc/nginx/sites-available/default dangles; the service fails at its next "
                              "reload")
    assert result.evidence["dangling"] == ("/etc/nginx/sites-enabled/default -> /etc/nginx/sites-available/"
                                           "default (/etc/nginx/sites-available/default does not exist)")
    assert "rm -- /etc/nginx/sites-enabled/default" in result.evidence["remedy"]
    # "Not in the manifest" is only a suspicion: the lookup of the target (no recursion) decides.
    assert manifests(agent)[1] == ("/etc/nginx/sites-available/default,"
                                   "/usr/share/nginx/modules-available/mod-stream.conf")


def test_relative_links_resolve_from_their_directory_and_warn_for_an_optional_component() -> None:
    agent = FakeAgent(files={"/etc/apache2/mods-available/ssl.load": b"LoadModule ssl_module x\n"},
                      symlinks={"/etc/apache2/mods-enabled/ssl.load": "../mods-available/ssl.load",
                                "/etc/apache2/mods-enabled/gone.load": "../mods-available/gone.load"})
    result = probe_symlinks(agent, APACHE)
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.evidence["dangling"] == ("/etc/apache2/mods-enabled/gone.load -> ../mods-available/"
                                           "gone.load (/etc/apache2/mods-available/gone.load does not exist)")
    assert result.evidence["links"] == "2"


def test_chains_are_followed_to_their_end() -> None:
    agent = FakeAgent(files={"/srv/conf/real.conf": b"x"},
                      symlinks={"/etc/nginx/conf.d/a.conf": "b.conf",
                                "/etc/nginx/conf.d/b.conf": "/srv/conf/c", "/srv/conf/c": "real.conf",
                                "/etc/nginx/conf.d/d.conf": "/srv/conf/e", "/srv/conf/e": "gone.conf"})
    result = probe_symlinks(agent, NGINX)
    assert result.evidence["dangling"] == ("/etc/nginx/conf.d/d.conf -> /srv/conf/e "
                                           "(/srv/conf/gone.conf does not exist)")
    assert result.summary.startswith("nginx: config symlink /etc/nginx/conf.d/d.conf")


def test_loops_dangle() -> None:
    agent = FakeAgent(symlinks={"/etc/nginx/a": "b", "/etc/nginx/b": "a", "/etc/nginx/self": "self"},
                      record=call_brief)
    result = probe_symlinks(agent, NGINX)
    assert result.evidence["dangling"] == ("/etc/nginx/a -> b (a loop of symlinks)\n"
                                           "/etc/nginx/b -> a (a loop of symlinks)\n"
                                           "/etc/nginx/self -> self (a loop of symlinks)")
    assert result.summary.startswith("nginx: 3 config symlinks dangle, first /etc/nginx/a -> b")
    assert manifests(agent) == ["/etc/nginx"]


def test_links_into_proc_and_sys_are_never_looked_up() -> None:
    agent = FakeAgent(record=call_brief, symlinks={"/etc/nginx/kcore": "/proc/kcore",
                                                   "/etc/nginx/up": "../../sys/class/net/lo/operstate",
                                                   "/etc/nginx/null": "/dev/null"})
    agent.put("/dev/null", Node("file"))   # stands in for the device: a node that exists
    result = probe_symlinks(agent, NGINX)
    assert result.ok
    assert result.evidence["unchecked"].splitlines() == [
        "/etc/nginx/kcore -> /proc/kcore (kernel file system, not looked up)",
        "/etc/nginx/up -> /sys/class/net/lo/operstate (kernel file system, not looked up)"]
    assert manifests(agent) == ["/etc/nginx", "/dev/null"]


def test_links_past_the_cap_are_counted_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(symlinks, "MAX_LINKS", 3)
    agent = FakeAgent(symlinks={f"/etc/nginx/l{i}": f"gone{i}" for i in range(5)})
    result = probe_symlinks(agent, NGINX)
    assert result.evidence["links"] == "3"
    assert result.evidence["unchecked"] == "2 links past the first 3"
    assert result.summary.startswith("nginx: 3 config symlinks dangle")


def test_many_dangling_links_are_listed_up_to_a_cap() -> None:
    agent = FakeAgent(symlinks={f"/etc/nginx/sites-enabled/s{i:02}": f"../sites-available/s{i:02}"
                                for i in range(30)})
    result = probe_symlinks(agent, NGINX)
    assert result.evidence["dangling"].count("\n") == symlinks.MAX_LISTED
    assert result.evidence["dangling"].endswith("... and 10 more")


def test_hostile_names_are_escaped_in_the_evidence() -> None:
    agent = FakeAgent(symlinks={"/etc/nginx/evil\x1b[2J name": "gone \x07\x1b]0;pwned\x07"})
    result = probe_symlinks(agent, NGINX)
    assert not result.ok
    for text in (result.summary, result.evidence["dangling"], result.evidence["remedy"]):
        assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J name" in result.evidence["dangling"]


def test_a_config_root_that_is_a_dangling_link_is_found() -> None:
    agent = FakeAgent(symlinks={"/etc/nginx": "/srv/nginx-conf"})
    result = probe_symlinks(agent, NGINX)
    assert result.evidence["dangling"] == "/etc/nginx -> /srv/nginx-conf (/srv/nginx-conf does not exist)"


def test_a_missing_config_path_holds_no_link() -> None:
    agent = FakeAgent()
    assert probe_symlinks(agent, NGINX).summary == "nginx: none of 0 config symlinks dangles"


def test_agent_failures_and_unusable_roots_make_it_unavailable() -> None:
    failing = FakeAgent(errors={"manifest": AgentError("target: agent manifest: more than 50000 entries")})
    result = probe_symlinks(failing, NGINX)
    assert result.is_unavailable
    assert "more than 50000 entries" in result.summary
    odd = Component("odd", config_paths=("etc/x", "/etc/x/", "//etc", "/etc/../x"))
    assert probe_symlinks(FakeAgent(), odd).is_unavailable
    assert symlinks.first_reads(odd) == ()


def test_first_reads_are_the_manifest_the_probe_makes() -> None:
    comp = Component("c", config_paths=("/etc/a", "/etc/b", "/etc/a", "relative"))
    assert symlinks.first_reads(comp) == (("manifest", manifest_args(["/etc/a", "/etc/b"])),)


@pytest.mark.parametrize(("link", "target", "resolved"), [
    ("/etc/nginx/sites-enabled/default", "../sites-available/default", "/etc/nginx/sites-available/default"),
    ("/etc/nginx/sites-enabled/default", "/etc/nginx/sites-available/default",
     "/etc/nginx/sites-available/default"),
    ("/etc/x", "../../../../y", "/y"),
    ("/etc/x", "//srv//./y/", "/srv/y"),
    ("/x", ".", "/"),
    ("/etc/x", "", None),
    ("/etc/x", "a\0b", None),
])
def test_link_target(link: str, target: str, resolved: str | None) -> None:
    assert link_target(link, target) == resolved


# -- the real agent, on a temporary directory ----------------------------------------------------------


@pytest.fixture
def real_agent(tmp_path: Path) -> RemoteAgent:
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    return RemoteAgent(LocalTransport(command_timeout=30), timeout=30, remote_dir=str(tmp_path / "run"),
                       python=python)


def test_on_the_real_agent(real_agent: RemoteAgent, tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "nginx"
    (conf / "sites-available").mkdir(parents=True)
    (conf / "sites-enabled").mkdir()
    (conf / "sites-available" / "default").write_text("server {}\n")
    (conf / "sites-enabled" / "default").symlink_to("../sites-available/default")
    (conf / "sites-enabled" / "gone").symlink_to(conf / "sites-available" / "gone")
    (conf / "loop-a").symlink_to("loop-b")
    (conf / "loop-b").symlink_to("loop-a")
    (conf / "kcore").symlink_to("/proc/kcore")
    outside = tmp_path / "srv"
    outside.mkdir()
    (outside / "snippet.conf").write_text("x\n")
    (conf / "snippet.conf").symlink_to(outside / "snippet.conf")
    (conf / "srv").symlink_to(outside)   # a link to a directory: looked up, never walked

    result = probe_symlinks(real_agent, Component("nginx", config_paths=(str(conf),)))
    assert not result.ok
    assert result.evidence["links"] == "7"
    assert result.evidence["dangling"].splitlines() == [
        f"{conf}/loop-a -> loop-b (a loop of symlinks)",
        f"{conf}/loop-b -> loop-a (a loop of symlinks)",
        f"{conf}/sites-enabled/gone -> {conf}/sites-available/gone "
        f"({conf}/sites-available/gone does not exist)",
    ]
    assert result.evidence["unchecked"] == f"{conf}/kcore -> /proc/kcore (kernel file system, not looked up)"


def test_a_dangling_link_under_an_ignored_path_is_counted_not_failed() -> None:
    agent = nginx_host()
    del agent.fs["/etc/nginx/sites-available/default"]
    result = probe_symlinks(agent, NGINX, ["/etc/nginx/sites-enabled"])
    assert result.ok
    assert result.evidence["ignored"] == ("1 dangling links under watch.ignore_paths, not judged: "
                                          "/etc/nginx/sites-enabled/default")
    assert not probe_symlinks(agent, NGINX, ["/etc/nginx/sites-enabled-old"]).ok
