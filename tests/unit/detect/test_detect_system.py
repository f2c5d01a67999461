"""system:state: systemctl is-system-running, and the failed units when the system is degraded."""

from __future__ import annotations

import pytest

from orchestrator import systemd
from orchestrator.detect import system
from orchestrator.detect.common import EVIDENCE_MAX, HOST_COMPONENT
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost, local_style_missing

#: systemd 252 (Debian 12), `systemctl list-units --state=failed --plain --no-legend --no-pager --full`.
FAILED_LIST = (b"nginx.service                loaded failed failed A high performance web server and a "
               b"reverse proxy server\n"
               b"srv-data.mount               loaded failed failed /srv/data\n"
               b"vmrepair-it-fail.service     loaded failed failed /bin/false\n")


def probe(host: FakeHost) -> ProbeResult:
    return system.probe_system(host.transport())


def test_running_passes_and_asks_nothing_else() -> None:
    transport = FakeHost().transport()
    result = system.probe_system(transport)
    assert (result.ok, result.is_unavailable, result.probe, result.component, result.kind) == (
        True, False, "system:state", HOST_COMPONENT, IssueKind.SYSTEM_DEGRADED)
    assert result.evidence == {"state": "running"}
    assert transport.argvs == [("systemctl", "is-system-running")]


@pytest.mark.parametrize("state", ["starting", "initializing"])
def test_a_boot_in_progress_passes_with_a_note(state: str) -> None:
    result = probe(FakeHost(system_state=state))
    assert result.ok
    assert result.summary == f"systemd reports the system {state}: the boot has not finished yet"


def test_degraded_is_a_warning_that_names_the_failed_units() -> None:
    transport = FakeHost(system_state="degraded", failed_units=FAILED_LIST).transport()
    result = system.probe_system(transport)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.SYSTEM_DEGRADED, Severity.WARNING)
    assert result.summary == "systemd reports the system degraded: 3 failed units, first nginx.service"
    assert result.evidence["failed_units"] == "nginx.service\nsrv-data.mount\nvmrepair-it-fail.service"
    assert result.evidence["failed_count"] == "3"
    assert transport.argvs[1] == ("systemctl", "list-units", "--state=failed", "--plain", "--no-legend",
                                  "--no-pager", "--full")


def test_degraded_with_the_bullet_of_an_older_systemctl() -> None:
    listing = ("\u25cf vmrepair-it-fail.service loaded failed failed /bin/false\n"
               "* other.service loaded failed failed Other\n").encode()
    result = probe(FakeHost(system_state="degraded", failed_units=listing))
    assert result.evidence["failed_units"] == "vmrepair-it-fail.service\nother.service"


def test_degraded_but_nothing_failed_any_more() -> None:
    result = probe(FakeHost(system_state="degraded"))
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.summary == "systemd reports the system degraded, but lists no failed unit now"


def test_bogus_unit_names_are_counted_never_kept() -> None:
    listing = (b"\x1b[2J\x1b]0;owned\x07.service loaded failed failed x\n"
               b"-rf.service loaded failed failed x\n"
               b"../../etc/passwd loaded failed failed x\n"
               b"noext loaded failed failed x\n"
               b"good@tty1.service loaded failed failed x\n")
    result = probe(FakeHost(system_state="degraded", failed_units=listing))
    assert result.evidence["failed_units"] == "good@tty1.service"
    assert result.evidence["rejected_lines"] == "4 lines of the listing named no valid unit"


def test_a_huge_listing_is_capped() -> None:
    listing = b"".join(f"unit{n:04d}.service loaded failed failed Unit {n}\n".encode() for n in range(700))
    result = probe(FakeHost(system_state="degraded", failed_units=listing))
    lines = result.evidence["failed_units"].splitlines()
    assert len(lines) == system.MAX_LISTED_UNITS + 1
    assert lines[-1] == f"... and {700 - system.MAX_LISTED_UNITS} more"
    assert result.evidence["failed_count"] == "700"
    assert len(result.evidence["failed_units"]) <= EVIDENCE_MAX


def test_a_listing_cut_at_the_output_cap_says_so() -> None:
    line = b"u" * 200 + b".service loaded failed failed x\n"
    answer = systemd.parse_failed_units(line.decode())
    assert answer.units == ("u" * 200 + ".service",)
    huge = line * (systemd.manager.MAX_LIST_OUTPUT // len(line) + 50)
    result = probe(FakeHost(system_state="degraded", failed_units=huge))
    assert result.evidence["failed_count"].endswith("+")
    assert result.evidence["failed_units"].splitlines()[-1].endswith("+ more")


def test_a_failed_listing_still_reports_degraded() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[1] == "is-system-running":
            return 1, b"degraded\n", b""
        return 1, b"", b"Failed to list units: Access denied\n"

    result = system.probe_system(FakeTransport(handler))
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.summary == "systemd reports the system degraded: at least one unit failed"
    assert "Access denied" in result.evidence["failed_units_error"]


@pytest.mark.parametrize("state", ["maintenance", "emergency", "stopping"])
def test_a_host_not_running_its_services_is_critical(state: str) -> None:
    result = probe(FakeHost(system_state=state))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.SYSTEM_DEGRADED, Severity.CRITICAL)
    assert result.summary == f"systemd reports the system in {state}: its services are not running"


@pytest.mark.parametrize(("host", "reason"), [
    (FakeHost(has_systemd=False), "the target does not run systemd as PID 1"),
    (FakeHost(has_systemctl=False), "systemctl is not installed on the target"),
    (FakeHost(system_state="offline"), "systemctl is-system-running answered offline"),
    (FakeHost(system_state="unknown"), "systemctl is-system-running gave no state"),
    (FakeHost(system_state="\x1b[2Jrunning"), "systemctl is-system-running gave no state"),
])
def test_no_answer_is_unavailable(host: FakeHost, reason: str) -> None:
    result = probe(host)
    assert result.is_unavailable
    assert reason in result.summary
    assert "\x1b" not in result.summary


def test_an_unexpected_state_word_is_unavailable() -> None:
    result = probe(FakeHost(system_state="rebooting-soon"))
    assert result.is_unavailable
    assert result.summary.endswith("systemctl is-system-running answered 'rebooting-soon'")


def test_local_transport_without_systemctl_and_a_hung_manager_are_unavailable() -> None:
    assert system.probe_system(FakeTransport(local_style_missing)).is_unavailable

    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    result = system.probe_system(FakeTransport(hang))
    assert result.is_unavailable
    assert "did not answer within 30 s" in result.summary
