"""config:, http:, disk:, inodes: and jsonl: probes, with hostile output and threshold edges."""

from __future__ import annotations

import pytest

from orchestrator.agent.api import BigFile, JsonlReport
from orchestrator.components.config import Thresholds
from orchestrator.detect import config_test, disk, http, jsonl
from orchestrator.detect.common import EVIDENCE_MAX, HOST_COMPONENT
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.model import Component, HttpCheck, IssueKind, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost, local_style_missing, target_agent, usage

NGINX = Component("nginx", config_test=("nginx", "-t"), http=(HttpCheck("http://127.0.0.1:80/"),))
CHECK = NGINX.http[0]
APP = Component("sampleapp", jsonl_logs=("/var/lib/sampleapp/interactions.jsonl",))
LOG = APP.jsonl_logs[0]
THRESHOLDS = Thresholds()
HOSTILE = b"\x1b[2J\x1b]0;owned\x07\r\x00\xff\xfe" * 1000 + b"A" * (1024 * 1024)


def _no_raw_controls(text: str) -> bool:
    return all(ch in "\n\t" or ch.isprintable() for ch in text)


# -- config ---------------------------------------------------------------------------------------
def test_config_test_passes() -> None:
    result = config_test.probe_config(FakeHost().transport(), NGINX)
    assert (result.ok, result.probe) == (True, "config:nginx")


def test_failing_config_test_is_critical_with_its_output() -> None:
    host = FakeHost(config_tests={"nginx": (1, b"nginx: [emerg] unknown directive \"sever\"\n")})
    result = config_test.probe_config(host.transport(), NGINX)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.CONFIG_INVALID, Severity.CRITICAL)
    assert result.summary == "nginx: config test `nginx -t` exited 1"
    assert 'unknown directive "sever"' in result.evidence["output"]
    assert result.evidence["exit_status"] == "1"


def test_hostile_config_output_is_capped_and_escaped() -> None:
    host = FakeHost(config_tests={"nginx": (1, HOSTILE)})
    result = config_test.probe_config(host.transport(), NGINX)
    output = result.evidence["output"]
    assert len(output) <= EVIDENCE_MAX
    assert _no_raw_controls(output)
    assert "\\x1b" in output
    assert "more characters not kept" in output


@pytest.mark.parametrize("transport", [FakeHost(missing={"nginx"}).transport(),
                                       FakeTransport(local_style_missing)])
def test_missing_config_test_program_is_unavailable(transport: FakeTransport) -> None:
    result = config_test.probe_config(transport, NGINX)
    assert result.is_unavailable
    assert "nginx is not installed" in result.summary


def test_hanging_config_test_is_invalid() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    result = config_test.probe_config(FakeTransport(hang), NGINX)
    assert (result.ok, result.kind, result.is_unavailable) == (False, IssueKind.CONFIG_INVALID, False)
    assert "did not finish" in result.summary


# -- http -----------------------------------------------------------------------------------------
def test_curl_argv_runs_on_the_target_as_a_list() -> None:
    transport = FakeHost().transport()
    result = http.probe_http(transport, NGINX, CHECK, 5.0)
    assert result.ok
    assert result.probe == "http:http://127.0.0.1:80/"
    assert transport.argvs == [("curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "5", "http://127.0.0.1:80/")]
    assert transport.calls[0].timeout == 15.0


def test_unexpected_status_is_http_down() -> None:
    host = FakeHost(http={CHECK.url: (0, b"503", b"")})
    result = http.probe_http(host.transport(), NGINX, CHECK, 5.0)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.HTTP_DOWN, Severity.CRITICAL)
    assert result.summary == "http://127.0.0.1:80/ answered 503, expected 200"


def test_expected_non_200_status_passes() -> None:
    check = HttpCheck("http://127.0.0.1:80/", expect_status=301)
    host = FakeHost(http={check.url: (0, b"301", b"")})
    assert http.probe_http(host.transport(), NGINX, check, 5.0).ok


@pytest.mark.parametrize("stdout", [b"000", HOSTILE])
def test_no_answer_is_http_down_with_curl_error(stdout: bytes) -> None:
    host = FakeHost(http={CHECK.url: (7, stdout, b"curl: (7) Failed to connect to 127.0.0.1 port 80\n")})
    result = http.probe_http(host.transport(), NGINX, CHECK, 5.0)
    assert (result.ok, result.evidence["status"]) == (False, "000")
    assert "no HTTP answer (curl exit 7)" in result.summary
    assert "Failed to connect" in result.evidence["curl_error"]


def test_missing_curl_is_unavailable() -> None:
    result = http.probe_http(FakeHost(missing={"curl"}).transport(), NGINX, CHECK, 5.0)
    assert result.is_unavailable


# -- disk / inodes --------------------------------------------------------------------------------
@pytest.mark.parametrize(("pct", "severity"), [
    (89.9, None), (90.0, Severity.WARNING), (94.9, Severity.WARNING), (95.0, Severity.CRITICAL),
    (100.0, Severity.CRITICAL),
])
def test_disk_threshold_edges(pct: float, severity: Severity | None) -> None:
    agent = target_agent(disk={"/": usage(pct)})
    result = disk.probe_disk(agent, "/", THRESHOLDS, ["/var/log"])
    assert (result.probe, result.component, result.kind) == ("disk:/", HOST_COMPONENT, IssueKind.DISK_FULL)
    assert result.ok is (severity is None)
    if severity is not None:
        assert result.severity is severity
    assert result.evidence["used_pct"] == f"{pct:.1f}"


@pytest.mark.parametrize(("pct", "severity"), [
    (89.9, None), (90.0, Severity.WARNING), (94.9, Severity.WARNING), (95.0, Severity.CRITICAL),
])
def test_inode_threshold_edges(pct: float, severity: Severity | None) -> None:
    result = disk.probe_inodes(target_agent(disk={"/": usage(inodes_pct=pct)}), "/", THRESHOLDS)
    assert (result.probe, result.kind) == ("inodes:/", IssueKind.INODES_FULL)
    assert result.ok is (severity is None)
    if severity is not None:
        assert result.severity is severity


def test_critical_disk_lists_the_biggest_log_files() -> None:
    big = [BigFile(f"/var/log/nginx/access.log.{i}", (i + 1) * 10**8) for i in range(7)]
    big.append(BigFile("/var/log/\x1b[31mevil", 10**9, is_open_by_writer=True))
    agent = target_agent(disk={"/": usage(99.0)}, big=big)
    result = disk.probe_disk(agent, "/", THRESHOLDS, ["/var/log", "/var/log/nginx"])
    lines = result.evidence["big_files"].splitlines()
    assert len(lines) == 5
    assert ("big_files", (("/var/log", "/var/log/nginx"), disk.BIG_FILES_MIN_BYTES, 5)) in agent.calls
    assert all("\x1b" not in line for line in lines)


def test_warning_disk_does_not_look_for_big_files() -> None:
    agent = target_agent(disk={"/": usage(91.0)})
    result = disk.probe_disk(agent, "/", THRESHOLDS, ["/var/log"])
    assert "big_files" not in result.evidence
    assert [name for name, _ in agent.calls] == ["disk_usage"]


def test_big_files_failure_is_noted_not_raised() -> None:
    agent = target_agent(disk={"/": usage(99.0)}, errors={"big_files": AgentError("boom")})
    result = disk.probe_disk(agent, "/", THRESHOLDS, ["/var/log"])
    assert result.severity is Severity.CRITICAL
    assert result.evidence["big_files_error"] == "boom"


def test_agent_failure_makes_disk_probes_unavailable() -> None:
    agent = target_agent(errors={"disk_usage": AgentError("no such mount")})
    assert disk.probe_disk(agent, "/srv", THRESHOLDS, []).is_unavailable
    assert disk.probe_inodes(agent, "/srv", THRESHOLDS).is_unavailable


# -- jsonl ----------------------------------------------------------------------------------------
def test_missing_log_is_ok() -> None:
    agent = target_agent(jsonl={LOG: JsonlReport(LOG, exists=False, total_lines=0, good_lines=0)})
    result = jsonl.probe_jsonl(agent, APP, LOG)
    assert (result.ok, result.probe) == (True, f"jsonl:{LOG}")


def test_bad_lines_are_critical_with_capped_evidence() -> None:
    bad = tuple((n, "Expecting value \x1b[31m" + "x" * 1000) for n in range(1, 101))
    report = JsonlReport(LOG, exists=True, total_lines=500, good_lines=400, bad_lines=bad, torn_tail=True)
    result = jsonl.probe_jsonl(target_agent(jsonl={LOG: report}), APP, LOG)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.LOG_CORRUPT, Severity.CRITICAL)
    assert result.summary == f"{LOG}: 100 bad lines and a torn last line out of 500"
    assert result.evidence["torn_tail"] == "true"
    listed = result.evidence["bad_lines"]
    assert len(listed) <= EVIDENCE_MAX
    assert listed.startswith("line 1: Expecting value \\x1b[31m")
    assert _no_raw_controls(listed)


def test_torn_tail_alone_is_corrupt() -> None:
    report = JsonlReport(LOG, exists=True, total_lines=10, good_lines=9, torn_tail=True)
    result = jsonl.probe_jsonl(target_agent(jsonl={LOG: report}), APP, LOG)
    assert result.summary == f"{LOG}: a torn last line out of 10"


def test_more_bad_lines_than_listed_are_counted() -> None:
    bad = tuple((n, "bad") for n in range(1, 31))
    report = JsonlReport(LOG, exists=True, total_lines=30, good_lines=0, bad_lines=bad)
    listed = jsonl.probe_jsonl(target_agent(jsonl={LOG: report}), APP, LOG).evidence["bad_lines"]
    assert listed.splitlines()[-1] == "... and 10 more"
    assert len(listed.splitlines()) == jsonl.MAX_LISTED_BAD_LINES + 1


def test_agent_failure_makes_jsonl_probe_unavailable() -> None:
    agent = target_agent(errors={"jsonl_check": AgentError("agent crashed")})
    assert jsonl.probe_jsonl(agent, APP, LOG).is_unavailable
