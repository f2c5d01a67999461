"""The Detector: plan, run, issue order, run_probe by name, the report's JSON."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

import pytest

from orchestrator.agent.api import JsonlReport
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.errors import AgentError, ConfigError
from orchestrator.model import Component, IssueKind, Severity
from tests.unit.detect.fakes import FAILED, HOST_PROBES, INACTIVE, FakeHost, target_agent, usage
from tests.unit.fake_agent import FakeAgent
from tests.unit.template_watch import template_watch

WATCH = template_watch()
LOG = "/var/lib/sampleapp/interactions.jsonl"

EXPECTED_PROBES = (
    "disk:/", "inodes:/",
    *HOST_PROBES,
    "config:nginx", "unit:nginx.service", "http:http://127.0.0.1:80/", "dpkg:nginx", "pkgmeta:nginx",
    "symlinks:nginx", "port:nginx:80",
    f"jsonl:{LOG}", "unit:sampleapp.service",
    "http:http://127.0.0.1:8080/health", "http:http://127.0.0.1:8080/ready", "symlinks:sampleapp",
    "writable:/var/lib/sampleapp", "port:sampleapp:8080",
    "config:sshd", "unit:ssh.service", "dpkg:sshd", "pkgmeta:sshd", "symlinks:sshd", "port:sshd:22",
    "unit:cron.service", "dpkg:cron", "pkgmeta:cron", "symlinks:cron",
    "config:rsyslog", "unit:rsyslog.service", "unit:syslog.socket", "dpkg:rsyslog", "pkgmeta:rsyslog",
    "symlinks:rsyslog",
    "fstab:/etc/fstab", "symlinks:boot",
)


def detector(host: FakeHost | None = None, agent: FakeAgent | None = None,
             watch: WatchConfig = WATCH) -> Detector:
    return Detector(watch, (host or FakeHost()).transport(), agent or target_agent())


def test_plan_covers_every_probe_of_the_default_components() -> None:
    assert detector().probe_names == EXPECTED_PROBES


def test_healthy_host_has_no_issues() -> None:
    report = detector().run()
    assert report.issues == ()
    assert [r.probe for r in report.results] == list(EXPECTED_PROBES)
    assert all(r.ok and not r.is_unavailable for r in report.results)


def test_config_issue_comes_first_and_explains_its_symptoms() -> None:
    host = FakeHost(units={"nginx.service": FAILED, "cron.service": INACTIVE},
                    config_tests={"nginx": (1, b"nginx: [emerg] bad\n")},
                    http={"http://127.0.0.1:80/": (7, b"000", b"curl: (7) refused\n")})
    report = detector(host).run()
    assert [(i.probe, i.severity) for i in report.issues] == [
        ("config:nginx", Severity.CRITICAL),
        ("unit:nginx.service", Severity.CRITICAL),
        ("http:http://127.0.0.1:80/", Severity.CRITICAL),
        ("unit:cron.service", Severity.WARNING),
    ]
    nginx_issues = report.issues[:3]
    assert "suspected_cause" not in nginx_issues[0].evidence
    assert all(i.evidence["suspected_cause"] == "config:nginx" for i in nginx_issues[1:])
    assert "suspected_cause" not in report.issues[3].evidence


def test_full_disk_and_corrupt_log_come_before_the_symptoms() -> None:
    bad_log = JsonlReport(LOG, exists=True, total_lines=3, good_lines=2, bad_lines=((2, "bad"),))
    agent = target_agent(disk={"/": usage(97.0)}, jsonl={LOG: bad_log})
    host = FakeHost(units={"sampleapp.service": FAILED},
                    http={"http://127.0.0.1:8080/health": (7, b"000", b"")})
    report = detector(host, agent).run()
    assert [(i.kind, i.component) for i in report.issues] == [
        (IssueKind.DISK_FULL, "host"),
        (IssueKind.LOG_CORRUPT, "sampleapp"),
        (IssueKind.UNIT_FAILED, "sampleapp"),
        (IssueKind.HTTP_DOWN, "sampleapp"),
    ]


def test_unavailable_results_never_become_issues() -> None:
    report = detector(FakeHost(has_systemd=False)).run()
    assert report.issues == ()
    assert {r.probe for r in report.unavailable} == {
        "system:state", *(p for p in EXPECTED_PROBES if p.startswith("unit:"))}


def test_run_probe_by_name_reruns_the_same_check() -> None:
    host = FakeHost(units={"ssh.service": FAILED})
    det = detector(host)
    first = next(r for r in det.run().results if r.probe == "unit:ssh.service")
    assert det.run_probe("unit:ssh.service") == first
    host.units.clear()
    assert det.run_probe("unit:ssh.service").ok


def test_run_probe_with_an_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown probe 'unit:nope\.service'") as caught:
        detector().run_probe("unit:nope.service")
    assert caught.value.remedy is not None
    assert "unit:nginx.service" in caught.value.remedy


def test_first_component_owns_a_shared_unit() -> None:
    watch = WatchConfig((Component("a", units=("x.service",)), Component("b", units=("x.service",))), ())
    det = detector(watch=watch)
    assert det.probe_names == (*HOST_PROBES, "unit:x.service")
    assert det.run_probe("unit:x.service").component == "a"


def test_report_as_dict_is_json() -> None:
    report = detector(FakeHost(units={"nginx.service": FAILED})).run()
    data = json.loads(json.dumps(report.as_dict()))
    assert set(data) == {"issues", "results"}
    assert data["issues"][0]["probe"] == "unit:nginx.service"
    assert data["issues"][0]["kind"] == "unit_failed"
    assert len(data["results"]) == len(EXPECTED_PROBES)
    assert {"probe", "ok", "unavailable", "evidence"} <= set(data["results"][0])


def test_critical_issues_exclude_warnings() -> None:
    report = detector(agent=target_agent(disk={"/": usage(92.0, inodes_pct=96.0)})).run()
    assert [i.kind for i in report.issues] == [IssueKind.INODES_FULL, IssueKind.DISK_FULL]
    assert [i.kind for i in report.critical_issues] == [IssueKind.INODES_FULL]


def test_run_components_runs_only_the_probes_of_those_components() -> None:
    """Stability rounds re-run one component's probes; under TCG each probe is a guest process."""
    from orchestrator.detect.detector import Detector
    from orchestrator.transport.fake import FakeTransport
    from tests.unit.detect.fakes import target_agent

    transport = FakeTransport(lambda argv, stdin: (0, b"", b""))
    detector = Detector(template_watch(), transport, target_agent())
    results = detector.run_components(["nginx"])
    assert results and {r.component for r in results} == {"nginx"}
    assert {r.probe for r in results} == {"config:nginx", "unit:nginx.service", "http:http://127.0.0.1:80/",
                                          "dpkg:nginx", "pkgmeta:nginx", "symlinks:nginx",
                                          "port:nginx:80"}
    assert {r.component for r in detector.run_components(["host"])} == {"host"}


def test_a_prefetching_agent_answers_the_probes_reads_in_one_batch() -> None:
    from orchestrator.transport.fake import FakeTransport
    from tests.unit.fake_agent import half_full

    class Batching:
        """Records the batch and answers every disk_usage the way a direct call would (the other
        reads fail, which only makes their probes unavailable)."""

        def __init__(self) -> None:
            self.batches: list[list[tuple[str, dict[str, object]]]] = []
            self.scopes = 0

        def prefetch(self, requests: list[tuple[str, dict[str, object]]]) -> None:
            self.batches.append(list(requests))

        def prefetch_scope(self) -> contextlib.AbstractContextManager[object]:
            self.scopes += 1
            return contextlib.nullcontext()

        def discard_prefetched(self) -> None:
            raise AssertionError("the batch's scope drops its answers")

        def disk_usage(self, mount: str) -> object:
            return half_full(mount)

        def read_file(self, path: str, *, max_bytes: int) -> bytes:
            raise AgentError(f"{path}: not answered in this test")

        def manifest(self, paths: list[str]) -> object:
            raise AgentError(f"{paths}: not answered in this test")

    agent = Batching()
    watch = WatchConfig((Component("app", jsonl_logs=()),), mounts=("/",))
    detector = Detector(watch, FakeTransport(), agent)  # type: ignore[arg-type]
    results = detector.run_all()
    assert [r.probe for r in results] == ["disk:/", "inodes:/", *HOST_PROBES]
    proc = [("read_file", {"path": path, "max_bytes": 64 * 1024})
            for path in ("/proc/pressure/memory", "/proc/meminfo", "/proc/vmstat")]
    manifests = [("manifest", {"paths": [path]}) for path in (
        "/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/group", "/etc/sudoers", "/etc/sudoers.d")]
    assert agent.batches == [[
        ("disk_usage", {"mount": "/"}), ("disk_usage", {"mount": "/"}), *proc,
        ("read_file", {"path": "/proc/sys/kernel/tainted", "max_bytes": 64}), *manifests]]
    assert agent.scopes == 1


def test_every_issue_kind_has_its_place_in_the_issue_order() -> None:
    from orchestrator.detect.report import build_issues
    from orchestrator.model import ProbeResult

    results = [ProbeResult(f"p:{kind}", "host", False, kind, Severity.WARNING, "s", "x")
               for kind in reversed(IssueKind)]
    assert [i.kind for i in build_issues(results, [])] == [
        IssueKind.DISK_FULL, IssueKind.INODES_FULL, IssueKind.MEMORY_PRESSURE, IssueKind.KERNEL_FAULT,
        IssueKind.PACKAGE_BROKEN, IssueKind.PATH_MISSING, IssueKind.PERMISSIONS, IssueKind.CONFIG_INVALID,
        IssueKind.LOG_CORRUPT, IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.PORT_DOWN,
        IssueKind.HTTP_DOWN, IssueKind.SYSTEM_DEGRADED, IssueKind.BOOT_CONFIG]


def test_host_wide_faults_come_before_the_component_symptoms_they_explain() -> None:
    host = FakeHost(units={"sampleapp.service": FAILED}, system_state="degraded",
                    failed_units=b"sampleapp.service loaded failed failed sampleapp\n")
    host.paths["/tmp"] = (0o40755, 0, 0, "root", "root")
    report = detector(host).run()
    assert [(i.probe, i.kind, i.severity) for i in report.issues] == [
        ("sysdir:/tmp", IssueKind.PERMISSIONS, Severity.CRITICAL),
        ("unit:sampleapp.service", IssueKind.UNIT_FAILED, Severity.CRITICAL),
        ("system:state", IssueKind.SYSTEM_DEGRADED, Severity.WARNING),
    ]
    assert report.issues[2].evidence["failed_units"] == "sampleapp.service"


def test_host_wide_probes_rerun_by_name_and_belong_to_the_host() -> None:
    host = FakeHost()
    det = detector(host)
    assert det.run_probe("sysdir:/tmp").ok
    host.paths["/tmp"] = (0o40755, 0, 0, "root", "root")
    assert not det.run_probe("sysdir:/tmp").ok
    assert [r.probe for r in det.run_components(["host"])] == ["disk:/", "inodes:/", *HOST_PROBES]


def test_every_issue_kind_of_the_component_probes_has_a_place_in_the_order() -> None:
    """Causes first: a dangling config link or a gone package file is why the config test fails."""
    from orchestrator.detect.report import build_issues
    from orchestrator.model import ProbeResult

    def failed(probe: str, kind: IssueKind) -> ProbeResult:
        return ProbeResult(probe, "nginx", False, kind, Severity.CRITICAL, probe, probe)

    results = [failed("port:nginx:80", IssueKind.PORT_DOWN), failed("http:x", IssueKind.HTTP_DOWN),
               failed("config:nginx", IssueKind.CONFIG_INVALID),
               failed("writable:/var/lib/nginx", IssueKind.PERMISSIONS),
               failed("symlinks:nginx", IssueKind.PATH_MISSING),
               failed("dpkg:nginx", IssueKind.PACKAGE_BROKEN)]
    assert [i.probe for i in build_issues(results, ["nginx"])] == [
        "dpkg:nginx", "symlinks:nginx", "writable:/var/lib/nginx", "config:nginx", "port:nginx:80", "http:x"]


def test_component_probes_read_in_the_batch_and_shared_reads_travel_once() -> None:
    """Each probe's first read, and the accounts every writable probe shares, are in the one batch, and
    each is exactly the request the probe then makes (else the prefetched answer would go unused)."""
    from orchestrator.agent.api import Manifest, manifest_args
    from tests.unit.fake_agent import Node

    class Recording(FakeAgent):
        def __init__(self) -> None:
            super().__init__(files={"/etc/passwd": b"app:x:101:104::/:/bin/false\n",
                                    "/etc/group": b"app:x:104:\n", "/etc/app/app.conf": b"x\n"})
            for path in ("/var/lib/app", "/var/log/app"):
                self.put(path, Node("dir", mode=0o750, uid=101, gid=104))
            self.batches: list[list[tuple[str, dict[str, object]]]] = []
            self.asked: list[tuple[str, dict[str, object]]] = []

        def prefetch(self, requests: list[tuple[str, dict[str, object]]]) -> None:
            self.batches.append(list(requests))

        def prefetch_scope(self) -> contextlib.AbstractContextManager[object]:
            return contextlib.nullcontext()

        def discard_prefetched(self) -> None:
            pass

        def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = ()) -> Manifest:
            self.asked.append(("manifest", manifest_args(paths, recursive=recursive)))
            return super().manifest(paths, recursive=recursive)

        def read_file(self, path: str, *, max_bytes: int) -> bytes:
            self.asked.append(("read_file", {"path": path, "max_bytes": max_bytes}))
            return super().read_file(path, max_bytes=max_bytes)

    agent = Recording()
    app = Component("app", config_paths=("/etc/app",), user="app",
                    writable_paths=("/var/lib/app", "/var/log/app"))
    detector = Detector(WatchConfig((app,), mounts=()), FakeHost().transport(), agent)
    results = detector.run_components(["app"])   # the host-wide probes read other files
    assert [(r.probe, r.ok) for r in results] == [("symlinks:app", True), ("writable:/var/lib/app", True),
                                                  ("writable:/var/log/app", True)]
    assert len(agent.batches) == 1
    assert sorted(map(repr, agent.batches[0])) == sorted(map(repr, agent.asked))
    assert [op for op, args in agent.batches[0] if args.get("path") == "/etc/passwd"] == ["read_file"]


def test_a_writable_probe_run_alone_judges_the_units_current_user() -> None:
    """The validator reruns ``writable:`` by name; its unit's User= must be asked in that run too, or the
    identity discovered while a drop-in named a missing account would be judged."""
    from tests.unit.fake_agent import Node

    agent = FakeAgent(files={"/etc/passwd": b"app:x:101:104::/:/bin/false\n", "/etc/group": b"app:x:104:\n"})
    agent.put("/var/lib/app", Node("dir", mode=0o750, uid=101, gid=104))
    discovered = Component("app", units=("app.service",), user="app-svc", writable_paths=("/var/lib/app",))
    shown = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running",
             "UnitFileState": "enabled", "User": "app", "Group": "app"}
    host = FakeHost(units={"app.service": shown})
    detector = Detector(WatchConfig((discovered,), mounts=()), host.transport(), agent)
    (result,) = detector.run_named(["writable:/var/lib/app"])
    assert (result.ok, result.is_unavailable) == (True, False), result


def test_verify_packages_reuses_the_answer_its_probes_had_while_nothing_changed() -> None:
    """The capture asks the Detector, not dpkg again: one verify for the probe and the capture."""

    class Fingerprinted(FakeAgent):
        def dpkg_fingerprint(self, binaries: Sequence[str]) -> tuple[str, bool]:
            return "f" * 64, False

    host = FakeHost(verify={"nginx": b"missing     /usr/sbin/nginx\n"})
    transport = host.transport()
    detector = Detector(WatchConfig(()), transport, Fingerprinted())
    first, second = detector.verify_packages(["nginx"]), detector.verify_packages(["nginx"])
    assert first is not None and second is not None and second.stdout == first.stdout
    verifies = [a for a in transport.argvs if a[:2] == ("dpkg", "--verify")]
    assert verifies == [("dpkg", "--verify", "--", "nginx")]

    plain = Detector(WatchConfig(()), transport, FakeAgent())   # no fingerprints: dpkg each time
    plain.verify_packages(["nginx"])
    plain.verify_packages(["nginx"])
    assert len([a for a in transport.argvs if a[:2] == ("dpkg", "--verify")]) == 3
