"""dpkg:<component> probes: dpkg-query states and dpkg --verify output as bookworm's dpkg prints them."""

from __future__ import annotations

import pytest

from orchestrator.detect import packages
from orchestrator.detect.packages import parse_status, parse_verify, probe_packages
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, IssueKind, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost, local_style_missing

NGINX = Component("nginx", units=("nginx.service",), packages=("nginx", "nginx-common"))
CRON = Component("cron", vital=False, units=("cron.service",), packages=("cron",))

#: What `dpkg --verify nginx nginx-common` prints after the admin edited nginx.conf, deleted the
#: unused koi-utf conffile and the default page, and something changed the binary (dpkg 1.21.22).
VERIFY_BROKEN = (b"??5?????? c /etc/nginx/nginx.conf\n"
                 b"missing   c /etc/nginx/koi-utf\n"
                 b"missing     /usr/share/nginx/html/index.html\n"
                 b"??5??????   /usr/sbin/nginx\n")


def run(host: FakeHost, component: Component = NGINX):
    transport = host.transport()
    return probe_packages(transport, component), transport


def test_healthy_packages_pass_with_one_query_and_one_verify() -> None:
    result, transport = run(FakeHost())
    assert (result.ok, result.probe, result.kind) == (True, "dpkg:nginx", IssueKind.PACKAGE_BROKEN)
    assert result.summary == "nginx: 2 packages installed and intact"
    assert result.evidence["packages"] == "nginx ii (installed), nginx-common ii (installed)"
    assert transport.argvs == [
        ("dpkg-query", "-W", "-f", r"${binary:Package}\t${db:Status-Abbrev}\n", "--",
         "nginx", "nginx-common"),
        ("dpkg", "--verify", "--", "nginx", "nginx-common"),
    ]


def test_a_package_dpkg_does_not_know_is_not_installed_and_is_not_verified() -> None:
    result, transport = run(FakeHost(package_states={"nginx-common": ""}))
    assert (result.ok, result.severity) == (False, Severity.CRITICAL)
    assert result.summary == "nginx: package nginx-common is not installed"
    assert result.evidence["remedy"] == "apt-get install nginx-common"
    assert transport.argvs[1] == ("dpkg", "--verify", "--", "nginx")


def test_a_removed_package_with_its_config_files_left_is_not_installed() -> None:
    result, _ = run(FakeHost(package_states={"nginx": "rc "}))
    assert result.summary == "nginx: package nginx is not installed"
    assert "nginx rc (removed, its config files left)" in result.evidence["packages"]


@pytest.mark.parametrize(("abbrev", "described"), [
    ("iF ", "nginx-common iF (half-configured)"),
    ("iU ", "nginx-common iU (unpacked but not configured)"),
    ("iH ", "nginx-common iH (half-installed)"),
    ("iHR", "nginx-common iHR (half-installed, reinstall required)"),
    ("hiR", "nginx-common hiR (installed, reinstall required)"),
])
def test_half_installed_states_are_broken(abbrev: str, described: str) -> None:
    result, _ = run(FakeHost(package_states={"nginx-common": abbrev}))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.PACKAGE_BROKEN, Severity.CRITICAL)
    assert result.summary == f"nginx: package {described}"
    assert result.evidence["remedy"] == "dpkg --configure -a\napt-get install --reinstall nginx-common"


@pytest.mark.parametrize("abbrev", ["it ", "iW ", "hi "])
def test_trigger_states_and_holds_are_installed(abbrev: str) -> None:
    assert run(FakeHost(package_states={"nginx": abbrev}))[0].ok


def test_an_optional_component_is_only_warned_about() -> None:
    result, _ = run(FakeHost(package_states={"cron": "iF "}), CRON)
    assert (result.ok, result.severity, result.probe) == (False, Severity.WARNING, "dpkg:cron")


def test_verify_faults_are_missing_files_changed_binaries_and_deleted_conffiles() -> None:
    host = FakeHost(verify={"nginx-common": VERIFY_BROKEN},
                    owners={"/usr/share/nginx/html/index.html": "nginx-common",
                            "/usr/sbin/nginx": "nginx", "/etc/nginx/koi-utf": "nginx-common"})
    result, transport = run(host)
    assert (result.ok, result.severity) == (False, Severity.CRITICAL)
    assert result.summary == ("nginx: 3 packaged files missing or changed, first /etc/nginx/koi-utf "
                              "(missing, conffile)")
    assert result.evidence["broken_files"] == ("/etc/nginx/koi-utf (missing, conffile)\n"
                                               "/usr/share/nginx/html/index.html (missing)\n"
                                               "/usr/sbin/nginx (changed)")
    # The admin's edit of a conffile is theirs to make.
    assert result.evidence["edited_conffiles"] == "/etc/nginx/nginx.conf (changed, conffile)"
    assert result.evidence["remedy"] == (
        "apt-get install --reinstall -o Dpkg::Options::=--force-confmiss nginx-common\n"
        "apt-get install --reinstall nginx-common\n"
        "apt-get install --reinstall nginx")
    assert transport.argvs[-1] == ("dpkg-query", "-S", "--", "/etc/nginx/koi-utf",
                                   "/usr/share/nginx/html/index.html", "/usr/sbin/nginx")


def test_edited_conffiles_alone_pass() -> None:
    result, transport = run(FakeHost(verify={"nginx-common": b"??5?????? c /etc/nginx/nginx.conf\n"
                                                             b"?M5?????? c /etc/nginx/mime.types\n"}))
    assert result.ok
    assert result.evidence["edited_conffiles"] == ("/etc/nginx/nginx.conf (changed, conffile)\n"
                                                   "/etc/nginx/mime.types (not a regular file, conffile)")
    assert not any(argv[:2] == ("dpkg-query", "-S") for argv in transport.argvs)


def test_a_file_dpkg_could_not_read_is_listed_not_judged() -> None:
    result, _ = run(FakeHost(verify={"nginx": b"?????????   /usr/share/doc/nginx/secret\n"}))
    assert result.ok
    assert result.evidence["unreadable_files"] == "/usr/share/doc/nginx/secret (changed)"


def test_without_an_owner_the_remedy_reinstalls_every_package_verified() -> None:
    result, _ = run(FakeHost(verify={"nginx": b"missing     /usr/sbin/nginx (Permission denied)\n"}))
    assert result.evidence["broken_files"] == "/usr/sbin/nginx (Permission denied) (missing)"
    assert result.evidence["remedy"] == "apt-get install --reinstall nginx nginx-common"


def test_multiarch_packages_are_verified_by_the_name_dpkg_printed() -> None:
    lib = Component("lib", packages=("libssl3",))
    host = FakeHost()
    transport = FakeTransport(lambda argv, stdin: (0, b"libssl3:amd64\tii \nlibssl3:i386\tun \n", b"")
                              if argv[0] == "dpkg-query" else host(argv, stdin))
    result = probe_packages(transport, lib)
    assert result.ok
    assert transport.argvs[1] == ("dpkg", "--verify", "--", "libssl3:amd64")


def test_no_dpkg_query_is_unavailable() -> None:
    result, _ = run(FakeHost(missing={"dpkg-query"}))
    assert result.is_unavailable
    assert result.summary.endswith("not checked: dpkg-query is not installed on the target (not a Debian "
                                   "system?)")
    assert probe_packages(FakeTransport(local_style_missing), NGINX).is_unavailable


def test_dpkg_query_failing_or_hanging_is_unavailable() -> None:
    failing = FakeTransport(lambda argv, stdin: (2, b"", b"dpkg-query: error: parsing file "
                                                         b"'/var/lib/dpkg/status' near line 7\n"))
    result = probe_packages(failing, NGINX)
    assert result.is_unavailable
    assert "near line 7" in result.evidence["output"]

    def hung(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    hanging = probe_packages(FakeTransport(hung), NGINX)
    assert hanging.summary.endswith("dpkg-query did not answer within 60 s")


def test_a_hanging_verify_leaves_the_state_verdict_standing() -> None:
    def handler(healthy: bool):
        host = FakeHost(package_states={} if healthy else {"nginx": "iF "})

        def answer(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
            if argv[0] == "dpkg":
                raise CommandTimeoutError("hung", argv=list(argv))
            return host(argv, stdin)
        return FakeTransport(answer)

    healthy = probe_packages(handler(True), NGINX)
    assert healthy.is_unavailable
    assert healthy.summary.endswith("dpkg --verify did not finish within 300 s")
    broken = probe_packages(handler(False), NGINX)
    assert (broken.ok, broken.is_unavailable) == (False, False)
    assert broken.evidence["verify"] == "dpkg --verify did not finish within 300 s"


def test_names_that_are_not_package_names_never_reach_dpkg() -> None:
    odd = Component("odd", packages=("nginx", "Nginx", "-x", "a b", "nginx;rm -rf /", "ok+pkg"))
    result, transport = run(FakeHost(), odd)
    assert result.ok
    assert transport.argvs[0][5:] == ("nginx", "ok+pkg")
    assert result.evidence["ignored_names"] == "Nginx -x a b nginx;rm -rf /"
    only_bad = probe_packages(FakeHost().transport(), Component("bad", packages=("../etc",)))
    assert only_bad.is_unavailable


def test_hostile_output_is_counted_capped_and_escaped() -> None:
    lines = [b"??5??????   /usr/share/x\x1b[31m-%d\n" % i for i in range(20_000)]
    garbage = b"\x00\xff not a verify line\n" * 100
    host = FakeHost(verify={"nginx": garbage + b"".join(lines)})
    transport = FakeTransport(lambda argv, stdin: (0, b"nginx\tii \nnginx-common\tii \nBAD NAME\tii \n"
                                                      b"nginx\tzz \n", b"")
                              if argv[:2] == ("dpkg-query", "-W") else host(argv, stdin))
    result = probe_packages(transport, NGINX)
    assert not result.ok
    assert result.evidence["rejected_lines"] == "2"
    assert "\x1b" not in result.evidence["broken_files"] and "\\x1b" in result.evidence["broken_files"]
    assert result.evidence["broken_files"].endswith("more")
    assert len(result.evidence["broken_files"]) <= 4096
    assert len(result.summary) <= 1024
    assert "verify_truncated" in result.evidence   # the transport kept 64 KiB of it


def test_parse_status_keeps_every_line_of_a_wanted_name() -> None:
    states, rejected = parse_status("nginx\tii \nlibc6:amd64\tii \nnginx:i386\tun \nx\t\n", ["nginx"])
    assert [(i.binary, i.abbrev) for i in states["nginx"]] == [("nginx", "ii "), ("nginx:i386", "un ")]
    assert rejected == 1


def test_parse_verify_reads_paths_with_spaces_and_strips_the_error_of_a_missing_one() -> None:
    checked = parse_verify("missing     /usr/share/doc/a b/c (Permission denied)\n"
                           "??5??????   /opt/my file\n"
                           "missing   x /etc/bad-attribute\n"
                           "??5?????  /short\n")
    assert [(line.text, line.path) for line in checked.broken] == [
        ("/usr/share/doc/a b/c (Permission denied)", ""),   # not a path dpkg-query -S is asked about
        ("/opt/my file", ""),
    ]
    assert checked.rejected == 2
    denied = parse_verify("missing     /usr/sbin/nginx (Permission denied)\n").broken[0]
    assert denied.path == "/usr/sbin/nginx"


def test_probe_name_is_stable() -> None:
    assert packages.probe_name(NGINX) == "dpkg:nginx"


def test_components_of_one_package_ask_dpkg_once_per_run() -> None:
    """Every systemd-* service is shipped by systemd: one dpkg-query and one --verify per run."""
    from orchestrator.components.config import WatchConfig
    from orchestrator.detect import Detector
    from tests.unit.detect.fakes import FakeHost, target_agent

    comps = tuple(Component(name, packages=("systemd",), origin="discovered")
                  for name in ("systemd-journald", "systemd-logind", "systemd-udevd"))
    transport = FakeHost().transport()
    detector = Detector(WatchConfig(comps, mounts=()), transport, target_agent())
    results = detector.run_components([c.name for c in comps])
    assert [r.ok for r in results if r.probe.startswith("dpkg:")] == [True, True, True]
    dpkg_calls = [a for a in transport.argvs if a[0] in ("dpkg", "dpkg-query")]
    assert dpkg_calls == [tuple(packages.status_argv(["systemd"])), tuple(packages.verify_argv(["systemd"]))]
    detector.run_components([c.name for c in comps])            # a new run asks again
    assert len([a for a in transport.argvs if a[0] in ("dpkg", "dpkg-query")]) == 4


def test_a_memo_answers_each_argv_once_and_remembers_a_failure() -> None:
    from orchestrator.detect.shared import CommandMemo
    from orchestrator.errors import CommandTimeoutError

    memo, calls = CommandMemo(), []

    def hang() -> None:
        calls.append(1)
        raise CommandTimeoutError("dpkg --verify did not finish")

    for _ in range(3):
        with pytest.raises(CommandTimeoutError):
            memo.run(("dpkg", "--verify"), hang)
    assert calls == [1]
    assert memo.run(("a",), lambda: 1) == 1 and memo.run(("a",), lambda: 2) == 1


def test_verify_findings_under_ignored_paths_are_named_not_judged() -> None:
    host = FakeHost(verify={"nginx-common": VERIFY_BROKEN},
                    owners={"/usr/sbin/nginx": "nginx"})
    result = probe_packages(host.transport(), NGINX, None, ["/usr/share/nginx", "/etc/nginx"])
    assert result.summary == "nginx: packaged file /usr/sbin/nginx (changed)"
    assert result.evidence["ignored"] == ("/etc/nginx/koi-utf (missing, conffile)\n"
                                          "/usr/share/nginx/html/index.html (missing)\n"
                                          "/etc/nginx/nginx.conf (changed, conffile)")
    assert "edited_conffiles" not in result.evidence
    everything = probe_packages(host.transport(), NGINX, None, ["/usr", "/etc/nginx"])
    assert everything.ok


def test_the_components_of_a_run_share_one_dpkg_query_of_all_their_packages() -> None:
    """One dpkg-query per round for every dpkg probe (each reads its own packages from it); --verify
    stays one per package set."""
    from orchestrator.components.config import WatchConfig
    from orchestrator.detect import Detector
    from tests.unit.detect.fakes import FakeHost, target_agent

    comps = (Component("nginx", packages=("nginx", "nginx-common"), origin="discovered"),
             Component("cron", packages=("cron",), origin="discovered"),
             Component("odd", packages=("not a name",), origin="discovered"))
    transport = FakeHost(package_states={"cron": "iF "}).transport()
    detector = Detector(WatchConfig(comps, mounts=()), transport, target_agent())
    results = {r.probe: r for r in detector.run_components(["nginx", "cron"])}
    assert results["dpkg:nginx"].ok and not results["dpkg:cron"].ok
    assert "cron" not in results["dpkg:nginx"].evidence["packages"]
    queries = [a for a in transport.argvs if a[0] == "dpkg-query"]
    assert queries == [tuple(packages.status_argv(["cron", "nginx", "nginx-common"]))]


def test_a_detector_reuses_a_verify_while_the_agents_fingerprint_holds() -> None:
    """Later rounds on one host (validation after detection) skip --verify of unchanged packages."""
    from orchestrator.components.config import WatchConfig
    from orchestrator.detect import Detector
    from tests.unit.detect.fakes import FakeHost, target_agent

    agent = target_agent()
    prints = {"cron": "a" * 64}
    agent.dpkg_fingerprint = lambda binaries: (prints[binaries[0]], False)   # type: ignore[attr-defined]
    transport = FakeHost().transport()
    comp = Component("cron", packages=("cron",), origin="discovered")
    detector = Detector(WatchConfig((comp,), mounts=()), transport, agent)

    def verifies() -> int:
        return len([a for a in transport.argvs if a[:2] == ("dpkg", "--verify")])

    first = {r.probe: r for r in detector.run_components(["cron"])}["dpkg:cron"]
    assert first.ok and "verify_reused" not in first.evidence and verifies() == 1
    second = {r.probe: r for r in detector.run_components(["cron"])}["dpkg:cron"]
    assert second.ok and "verify_reused" in second.evidence and verifies() == 1
    prints["cron"] = "b" * 64                      # a packaged file changed
    detector.run_components(["cron"])
    assert verifies() == 2
