"""``pkgmeta:<component>``: owners and modes against what the installed package's own .deb ships."""

from __future__ import annotations

import json

from orchestrator.agent.api import DebEntry
from orchestrator.detect import pkgmeta
from orchestrator.model import REPORT_ONLY, Component, Issue, IssueKind, Severity
from orchestrator.pipeline.triage import is_report_only
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import FakeAgent, Node, file_node

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                  packages=("nginx", "nginx-common"))
DEB = "/var/cache/apt/archives/nginx-common_1.22.1-9_all.deb"
SHIPPED = [DebEntry("/etc/nginx", "dir", 0o755, 0, 0, "root", "root"),
           DebEntry("/etc/nginx/nginx.conf", "file", 0o644, 0, 0, "root", "root"),
           DebEntry("/etc/nginx/mime.types", "file", 0o644, 0, 0, "root", "root"),
           DebEntry("/etc/nginx/sites-enabled/default", "symlink", 0o777, 0, 0, "root", "root")]


def host(common_version: str = "1.22.1-9") -> FakeTransport:
    """dpkg-query as bookworm prints it: nginx is arch-specific, nginx-common Architecture: all."""
    lines = {"nginx": "nginx\t1.22.1-9\tamd64\tii \n",
             "nginx-common": f"nginx-common\t{common_version}\tall\tii \n"}

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        assert argv[:4] == ("dpkg-query", "-W", "-f", pkgmeta.VERSION_FORMAT)
        return 0, "".join(lines[name] for name in argv[5:]).encode(), b""

    return FakeTransport(handler)


def agent(conf_mode: int = 0o644, uid: int = 0, *, debs: dict[str, list[DebEntry]] | None = None,
          statoverride: bytes | None = None) -> FakeAgent:
    fake = FakeAgent(fs={"/etc/nginx": Node("dir", mode=0o755),
                         "/etc/nginx/nginx.conf": file_node(b"events {}\n", conf_mode, uid=uid),
                         "/etc/nginx/mime.types": file_node(b"types {}\n", 0o644),
                         "/etc/nginx/local.conf": file_node(b"x\n", 0o600)},
                     symlinks={"/etc/nginx/sites-enabled/default": "/etc/nginx/sites-available/default"},
                     debs={DEB: SHIPPED} if debs is None else debs)
    if statoverride is not None:
        fake.file(pkgmeta.STATOVERRIDE, statoverride)
    return fake


def test_files_as_the_package_ships_them_pass_and_unshipped_files_are_not_judged() -> None:
    result = pkgmeta.probe_pkgmeta(host(), agent(), NGINX)
    assert result.ok, result.summary
    # nginx itself ships no file here: its .deb is not in the cache, nginx-common's answers.
    assert result.evidence["compared"] == "4"
    assert result.evidence["packages"] == "nginx-common 1.22.1-9 (all)"
    assert result.evidence["unchecked_packages"] == ("nginx 1.22.1-9 (amd64): no nginx_1.22.1-9_amd64.deb "
                                                     "in /var/cache/apt/archives")


def test_a_chmodded_conffile_is_a_critical_finding_for_a_vital_component() -> None:
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o777, uid=33), NGINX)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.PERMISSIONS, Severity.CRITICAL)
    assert result.evidence["changed"] == ("/etc/nginx/nginx.conf: mode 0777 www-data:root, package "
                                          "nginx-common 1.22.1-9 ships 0644 root:root")
    assert "chmod 0644 /etc/nginx/nginx.conf" in result.evidence["remedy"]
    optional = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o777), Component(
        "nginx", vital=False, config_paths=("/etc/nginx",), packages=("nginx-common",)))
    assert optional.severity == Severity.WARNING


def test_setuid_and_owner_by_name_are_compared() -> None:
    shipped = [DebEntry("/etc/nginx/nginx.conf", "file", 0o4755, 1234, 1234, "www-data", "root")]
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o4755, uid=33, debs={DEB: shipped}), NGINX)
    assert result.ok, result.evidence   # uid 1234 in the .deb, www-data by name on both sides
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o755, uid=33, debs={DEB: shipped}), NGINX)
    assert "ships 4755 www-data:root" in result.evidence["changed"]


def test_an_admin_statoverride_is_not_a_finding() -> None:
    overrides = b"www-data root 0640 /etc/nginx/nginx.conf\nbroken line\n"
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o640, uid=33, statoverride=overrides), NGINX)
    assert result.ok, result.evidence
    # ... and what the override sets is what is judged.
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o644, statoverride=overrides), NGINX)
    assert result.evidence["changed"] == ("/etc/nginx/nginx.conf: mode 0644 root:root, dpkg-statoverride "
                                          "sets 0640 www-data:root")


def test_no_deb_in_the_cache_is_unavailable_naming_package_version_and_directory() -> None:
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o777, debs={}), NGINX)
    assert result.is_unavailable and not result.ok and result.severity == Severity.INFO
    assert "nginx-common 1.22.1-9 (all): no nginx-common_1.22.1-9_all.deb in /var/cache/apt/archives" \
        in result.summary


def test_an_epoch_is_written_as_apt_names_the_file() -> None:
    fake = agent()
    pkgmeta.probe_pkgmeta(host("2:1.22.1-9"), fake, NGINX)
    asked = [args[0] for method, args in fake.calls if method == "deb_meta"]
    assert asked[-1] == "/var/cache/apt/archives/nginx-common_2%3a1.22.1-9_all.deb"


def test_ignored_paths_are_not_judged() -> None:
    fake = agent(conf_mode=0o777)
    result = pkgmeta.probe_pkgmeta(host(), fake, NGINX, ignored=("/etc/nginx/nginx.conf",))
    assert result.ok
    asked = [args[1] for method, args in fake.calls if method == "deb_meta"]
    assert all("/etc/nginx/nginx.conf" not in paths for paths in asked)


def test_a_symlink_s_mode_is_never_compared_only_its_type() -> None:
    shipped = [DebEntry("/etc/nginx/sites-enabled/default", "symlink", 0o644, 0, 0, "root", "root")]
    assert pkgmeta.probe_pkgmeta(host(), agent(debs={DEB: shipped}), NGINX).ok
    shipped = [DebEntry("/etc/nginx/sites-enabled/default", "file", 0o644, 0, 0, "root", "root")]
    result = pkgmeta.probe_pkgmeta(host(), agent(debs={DEB: shipped}), NGINX)
    assert "symlink, package nginx-common 1.22.1-9 ships a file" in result.evidence["changed"]


def test_a_path_as_the_healthy_baseline_recorded_it_is_the_host_s_known_state() -> None:
    recorded = {"/etc/nginx/nginx.conf": ("file", 0o640, 0, 0)}
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o640), NGINX, recorded=recorded)
    assert result.ok and "nginx.conf" in result.evidence["as_baseline"]


def test_planned_where_the_component_has_packages_and_paths() -> None:
    assert pkgmeta.is_planned(NGINX)
    assert not pkgmeta.is_planned(Component("app", config_paths=("/etc/app",)))
    assert not pkgmeta.is_planned(Component("app", packages=("app",)))
    assert pkgmeta.first_reads(NGINX)[0] == ("manifest", {"paths": ["/etc/nginx"]})


def test_statoverride_lines_are_parsed_and_bad_ones_skipped() -> None:
    text = "root root 4755 /usr/bin/x\n#1000 adm 0640 /var/log/y z\nroot root 0999 /bad\nshort\n"
    assert pkgmeta.parse_statoverride(text) == {"/usr/bin/x": ("root", "root", 0o4755),
                                                "/var/log/y z": ("#1000", "adm", 0o640)}


def test_the_values_to_restore_travel_as_json_for_the_repair() -> None:
    result = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o777, uid=33), NGINX)
    restore = json.loads(result.evidence[pkgmeta.RESTORE_KEY])
    assert restore == [["/etc/nginx/nginx.conf", "0644", "root", "root"]]


def test_a_round_asks_dpkg_once_for_every_component_and_a_deb_is_read_once_per_host() -> None:
    """Two components' probes share the round's dpkg-query (of both their packages); a later round
    reuses the .deb answers (the same file name and paths), but asks dpkg again."""
    web2 = Component("web2", units=("web2.service",), config_paths=("/etc/nginx",), packages=("nginx",))
    transport, fake = host(), agent()
    debs = pkgmeta.DebMetaCache()
    for _ in range(2):
        answers = pkgmeta.shared_answers()
        with answers.scope():
            for component in (NGINX, web2):
                pkgmeta.probe_pkgmeta(transport, fake, component, answers=answers,
                                      run_packages=("nginx", "nginx-common"), debs=debs)
    assert transport.argvs == [("dpkg-query", "-W", "-f", pkgmeta.VERSION_FORMAT, "--", "nginx",
                                "nginx-common")] * 2
    read = [call[1][0] for call in fake.calls if call[0] == "deb_meta"]
    # nginx's own .deb is not in the cache: that answer is kept too.
    assert sorted(read) == [DEB, "/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb"]


def test_a_drift_that_opens_nothing_is_reported_never_repaired_and_one_that_does_is_a_fault() -> None:
    """Without a baseline, a config file given to a service account or made tighter may be intended:
    a warning marked report-only. Writable by every user, or a set-id bit the package does not set,
    is a fault whatever anyone intended."""
    handed = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=0o640, uid=33), NGINX)
    assert (handed.ok, handed.severity) == (False, Severity.WARNING)
    assert REPORT_ONLY in handed.evidence and "opened" not in handed.evidence
    assert is_report_only(Issue.from_result(handed))
    for mode in (0o666, 0o2644):
        opened = pkgmeta.probe_pkgmeta(host(), agent(conf_mode=mode), NGINX)
        assert (opened.ok, opened.severity) == (False, Severity.CRITICAL), oct(mode)
        assert REPORT_ONLY not in opened.evidence and opened.evidence["opened"] == "/etc/nginx/nginx.conf"
        assert not is_report_only(Issue.from_result(opened))
