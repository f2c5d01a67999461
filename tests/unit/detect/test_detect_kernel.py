"""kernel:taint: the taint mask decoded, fault lines of the boot's kernel journal, hostile input."""

from __future__ import annotations

import pytest

from orchestrator.detect import kernel, kernel_log
from orchestrator.detect.common import EVIDENCE_MAX, HOST_COMPONENT
from orchestrator.detect.kernel_log import KernelLog
from orchestrator.errors import AgentError
from orchestrator.model import IssueKind, ProbeResult, Severity
from tests.unit.detect.fakes import FakeHost, target_agent
from tests.unit.fake_agent import FakeAgent

#: An x86 oops and a soft lockup as `journalctl -k -p warning -o short-iso --reverse` prints them
#: (newest first), with a line of the same boot that reports nothing wrong.
OOPS_LOG = (
    b"2024-05-14T11:05:40+0000 debian kernel: watchdog: BUG: soft lockup - CPU#1 stuck for 26s! "
    b"[kworker/1:2:87]\n"
    b"2024-05-14T11:02:13+0000 debian kernel: Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
    b"2024-05-14T11:02:13+0000 debian kernel: #PF: supervisor read access in kernel mode\n"
    b"2024-05-14T11:02:13+0000 debian kernel: BUG: kernel NULL pointer dereference, address: "
    b"0000000000000008\n"
    b"2024-05-14T10:00:01+0000 debian kernel: clocksource: tsc: mask: 0xffffffffffffffff max_cycles: "
    b"0x2b3e459bf4c\n"
)
GPF = (b"2024-05-14T12:00:00+0000 debian kernel: general protection fault, probably for non-canonical "
       b"address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI\n")


def tainted(value: bytes) -> FakeAgent:
    agent = target_agent()
    agent.file(kernel.TAINTED_PATH, value, 0o444)
    return agent


def probe(agent: FakeAgent | None = None, log: bytes = b"") -> ProbeResult:
    return kernel.probe_kernel(FakeHost(kernel_log=log).transport(), agent or target_agent())


def test_an_untainted_kernel_with_a_quiet_journal_passes() -> None:
    transport = FakeHost().transport()
    result = kernel.probe_kernel(transport, target_agent())
    assert (result.ok, result.probe, result.component, result.kind) == (
        True, "kernel:taint", HOST_COMPONENT, IssueKind.KERNEL_FAULT)
    assert result.evidence == {"tainted": "0", "flags": "none", "journal_fault_lines": "0"}
    assert transport.argvs == [("journalctl", "-k", "--reverse", "--output=short-iso", "--no-pager",
                                "--quiet", "--priority=warning")]


@pytest.mark.parametrize(("mask", "letters"), [
    (1, "P"), (4096, "O"), (8192, "E"), (12289, "POE"), (32768, "K"), (256, "A"),
])
def test_build_and_module_flags_are_listed_but_not_faults(mask: int, letters: str) -> None:
    result = probe(tainted(f"{mask}\n".encode()))
    assert result.ok
    assert [line[0] for line in result.evidence["flags"].splitlines()] == list(letters)


@pytest.mark.parametrize(("mask", "severity", "reason"), [
    (512, Severity.WARNING, "tainted W (kernel issued a warning)"),
    (16384, Severity.WARNING, "tainted L (soft lockup occurred)"),
    (640, Severity.CRITICAL, "tainted DW (kernel died recently (oops or BUG), kernel issued a warning)"),
    (16, Severity.CRITICAL, "tainted M (processor reported a machine check exception)"),
    (32 | 4096, Severity.CRITICAL, "tainted B (bad page referenced or unexpected page flags)"),
])
def test_fault_flags(mask: int, severity: Severity, reason: str) -> None:
    result = probe(tainted(f"{mask}\n".encode()))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.KERNEL_FAULT, severity)
    assert result.summary == f"kernel fault since boot: {reason}"
    assert result.evidence["tainted"] == str(mask)


def test_every_set_flag_is_decoded_in_the_evidence() -> None:
    result = probe(tainted(b"12801\n"))   # P, W, O, E: a proprietary module's warning
    assert result.evidence["flags"] == ("P (bit 0): proprietary module loaded\n"
                                        "W (bit 9): kernel issued a warning\n"
                                        "O (bit 12): externally-built (out-of-tree) module loaded\n"
                                        "E (bit 13): unsigned module loaded")
    assert result.severity is Severity.WARNING


def test_unknown_bits_are_listed_not_judged() -> None:
    result = probe(tainted(f"{1 << 40}\n".encode()))
    assert result.ok
    assert result.evidence["flags"] == "? (bit 40): bit 40 (unknown to vmrepair)"


def test_fault_lines_in_the_journal_are_a_warning_quoted_oldest_first() -> None:
    result = probe(log=OOPS_LOG)
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.evidence["journal_fault_lines"] == "3"
    faults = [line for line in OOPS_LOG.decode().splitlines() if "#PF" not in line and "tsc" not in line]
    assert result.evidence["journal"].splitlines() == faults[::-1]
    assert "last: 2024-05-14T11:05:40+0000 debian kernel: watchdog: BUG: soft lockup" in result.summary


def test_an_oops_with_its_taint_is_critical() -> None:
    result = probe(tainted(b"640\n"), log=OOPS_LOG + GPF)
    assert result.severity is Severity.CRITICAL
    assert result.evidence["journal_fault_lines"] == "4"


@pytest.mark.parametrize("line", [
    "kernel: Kernel panic - not syncing: Fatal exception", "kernel: kernel BUG at mm/slub.c:431!",
    "kernel: Internal error: Oops: 96000004 [#1] SMP", GPF.decode().strip(),
])
def test_each_fault_pattern_matches(line: str) -> None:
    assert kernel.fault_lines(KernelLog((line,))) == [line]


@pytest.mark.parametrize("line", [
    "kernel: Oopsie daisy driver loaded", "kernel: DEBUG: BUGS fixed", "kernel: nothing to see",
])
def test_lookalikes_do_not_match(line: str) -> None:
    assert kernel.fault_lines(KernelLog((line,))) == []


def test_hostile_journal_lines_are_escaped_and_capped() -> None:
    evil = ("kernel: BUG: \x1b]0;owned\x07" + "A" * 5000 + "\n") * 200
    result = probe(log=evil.encode())
    assert result.evidence["journal_fault_lines"] == "200"
    assert len(result.evidence["journal"].splitlines()) <= 2 * kernel.MAX_LINES
    assert len(result.evidence["journal"]) <= EVIDENCE_MAX
    assert "\x1b" not in result.evidence["journal"] and "\x07" not in result.summary
    assert len(result.summary) < 600


@pytest.mark.parametrize("value", [b"", b"-1\n", b"0x200\n", b"1" * 25 + b"\n", b"\x1b[2J512\n", b"5 12\n"])
def test_a_garbled_taint_mask_is_not_a_verdict(value: bytes) -> None:
    result = probe(tainted(value))
    assert result.ok   # the journal alone decides: it is quiet
    assert result.evidence["taint_error"] == "/proc/sys/kernel/tainted holds no taint mask"


def test_either_source_alone_decides_and_neither_is_unavailable() -> None:
    no_agent = target_agent(errors={"read_file": AgentError("agent crashed")})
    result = probe(no_agent, log=OOPS_LOG)
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert "agent crashed" in result.evidence["taint_error"]
    no_journal = kernel.probe_kernel(FakeHost(missing={"journalctl"}).transport(), tainted(b"512\n"))
    assert no_journal.severity is Severity.WARNING
    assert no_journal.evidence["journal_error"] == "journalctl is not installed on the target"
    neither = kernel.probe_kernel(FakeHost(missing={"journalctl"}).transport(), no_agent)
    assert neither.is_unavailable
    assert "agent crashed" in neither.summary and "journalctl is not installed" in neither.summary


def test_the_probe_starts_with_the_read_it_declares() -> None:
    agent = target_agent()
    probe(agent)
    assert agent.calls == [("read_file", (kernel.TAINTED_PATH, kernel.TAINTED_MAX_BYTES))]
    assert kernel.first_reads() == (("read_file", {"path": kernel.TAINTED_PATH, "max_bytes": 64}),)


# -- the kernel journal reader both kernel:taint and memory:oom use ---------------------------------
def test_journal_argv_refuses_caller_bugs() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        kernel_log.journal_argv(since_minutes=0)
    with pytest.raises(ValueError, match="unknown journal priority"):
        kernel_log.journal_argv(priority="loud; rm -rf /")


def test_a_journal_past_the_read_cap_drops_its_cut_line_and_says_so() -> None:
    line = b"2024-05-14T10:00:00+0000 debian kernel: " + b"n" * 60 + b"\n"
    count = kernel_log.OUTPUT_MAX // len(line) + 100
    log = kernel_log.read_kernel_log(FakeHost(kernel_log=line * count).transport(), priority="warning")
    assert isinstance(log, KernelLog)
    assert log.is_truncated
    assert len(log.lines) == kernel_log.OUTPUT_MAX // len(line)
    assert all(entry == line.decode().rstrip("\n") for entry in log.lines)


def test_overlong_journal_lines_are_cut_and_stamps_read() -> None:
    log = kernel_log.read_kernel_log(FakeHost(kernel_log=b"x" * 10_000 + b"\n").transport())
    assert isinstance(log, KernelLog)
    assert len(log.lines[0]) == kernel_log.LINE_MAX
    assert kernel_log.stamp("2024-05-14T10:22:31+0000 debian kernel: x") == "2024-05-14T10:22:31+0000"
    assert kernel_log.stamp("2024-05-14T10:22:31+00:00 debian kernel: x") == "2024-05-14T10:22:31+00:00"
    assert kernel_log.stamp("\x1b[2J2024-05-14T10:22:31+0000 x") == ""
