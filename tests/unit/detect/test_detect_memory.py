"""memory:pressure (meminfo, PSI) and memory:oom (vmstat and the kernel journal)."""

from __future__ import annotations

import pytest

from orchestrator.components.config import Thresholds
from orchestrator.detect import memory
from orchestrator.detect.common import EVIDENCE_MAX, HOST_COMPONENT
from orchestrator.detect.kernel_log import KernelLog
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import MEMINFO, VMSTAT, FakeHost, target_agent
from tests.unit.fake_agent import FakeAgent

THRESHOLDS = Thresholds()
PSI_STALLED = (b"some avg10=62.17 avg60=48.89 avg300=20.02 total=93782733\n"
               b"full avg10=41.35 avg60=32.12 avg300=12.78 total=61262478\n")
PSI_SOME_ONLY = (b"some avg10=0.00 avg60=45.00 avg300=0.00 total=0\n"
                 b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
#: The two lines of one global OOM kill, the invoker's line, and a memory cgroup's kill, as
#: `journalctl -k -o short-iso --reverse` prints them on Debian 12 (kernel 6.1), newest first.
OOM_LOG = (
    b"2024-05-14T10:30:02+0000 debian kernel: Memory cgroup out of memory: Killed process 2211 (python3) "
    b"total-vm:512000kB, anon-rss:262144kB, file-rss:0kB, shmem-rss:0kB, UID:998 pgtables:700kB "
    b"oom_score_adj:0\n"
    b"2024-05-14T10:30:02+0000 debian kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
    b"mems_allowed=0,oom_memcg=/system.slice/sampleapp.service,task_memcg=/system.slice/sampleapp.service,"
    b"task=python3,pid=2211,uid=998\n"
    b"2024-05-14T10:22:31+0000 debian kernel: Out of memory: Killed process 1240 (stress-ng) "
    b"total-vm:1062552kB, anon-rss:952320kB, file-rss:1152kB, shmem-rss:32kB, UID:0 pgtables:1900kB "
    b"oom_score_adj:1000\n"
    b"2024-05-14T10:22:31+0000 debian kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
    b"mems_allowed=0,global_oom,task_memcg=/system.slice/stress.service,task=stress-ng,pid=1240,uid=0\n"
    b"2024-05-14T10:22:31+0000 debian kernel: CPU: 0 PID: 1234 Comm: stress-ng Not tainted 6.1.0-21-amd64 "
    b"#1  Debian 6.1.90-1\n"
    b"2024-05-14T10:22:31+0000 debian kernel: stress-ng invoked oom-killer: "
    b"gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=1000\n"
)


def meminfo(total_kib: int, available_kib: int) -> bytes:
    return (f"MemTotal:       {total_kib} kB\nMemFree:        1000 kB\n"
            f"MemAvailable:   {available_kib} kB\n").encode()


def agent(**files: bytes) -> FakeAgent:
    """The healthy target with /proc files replaced (keys: psi, meminfo, vmstat)."""
    target = target_agent()
    paths = {"psi": memory.PSI_PATH, "meminfo": memory.MEMINFO_PATH, "vmstat": memory.VMSTAT_PATH}
    for key, data in files.items():
        target.file(paths[key], data, 0o444)
    return target


def pressure(target: FakeAgent, thresholds: Thresholds = THRESHOLDS) -> ProbeResult:
    return memory.probe_pressure(target, thresholds)


# -- memory:pressure -----------------------------------------------------------------------------
def test_an_idle_host_passes_with_its_figures() -> None:
    result = pressure(target_agent())
    assert (result.ok, result.probe, result.component, result.kind) == (
        True, "memory:pressure", HOST_COMPONENT, IssueKind.MEMORY_PRESSURE)
    assert result.summary == "memory: 85.0% available"
    assert result.evidence["mem_available_kib"] == "1712816"
    assert result.evidence["psi_full_avg60"] == "0.00"


@pytest.mark.parametrize(("available_kib", "severity"), [
    (201_000, None), (200_000, None), (199_999, Severity.WARNING), (100_000, Severity.WARNING),
    (99_999, Severity.CRITICAL), (0, Severity.CRITICAL),
])
def test_available_memory_threshold_edges(available_kib: int, severity: Severity | None) -> None:
    # Of 2,000,000 kB, 10% is 200,000 and 5% 100,000: below a threshold counts, at it does not.
    result = pressure(agent(meminfo=meminfo(2_000_000, available_kib)))
    assert result.ok is (severity is None)
    if severity is not None:
        assert result.severity is severity
        pct = 100 * available_kib / 2_000_000
        assert result.summary.startswith(f"memory pressure: only {pct:.1f}% of memory available")


def test_psi_full_stall_is_a_warning_even_with_memory_available() -> None:
    result = pressure(agent(psi=PSI_STALLED))
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.summary == ("memory pressure: all tasks stalled on memory 32.12% of the last minute; "
                              "some tasks stalled on memory 48.89% of the last minute")
    assert result.evidence["psi_full_avg60"] == "32.12"


def test_psi_some_alone_crosses_its_own_threshold() -> None:
    result = pressure(agent(psi=PSI_SOME_ONLY))
    assert result.summary == "memory pressure: some tasks stalled on memory 45.00% of the last minute"
    assert pressure(agent(psi=PSI_SOME_ONLY), Thresholds(psi_some_avg60_warning=50.0)).ok


def test_low_memory_and_stalls_together_keep_the_worst_severity() -> None:
    result = pressure(agent(psi=PSI_STALLED, meminfo=meminfo(2_000_000, 50_000)))
    assert result.severity is Severity.CRITICAL
    assert result.summary.count(";") == 2


def test_a_kernel_without_psi_is_judged_on_meminfo_alone() -> None:
    target = target_agent(existing=set())
    del target.fs[memory.PSI_PATH]
    result = pressure(target)
    assert result.ok
    assert result.evidence["psi"].startswith("/proc/pressure/memory does not exist")
    target.file(memory.MEMINFO_PATH, meminfo(2_000_000, 10), 0o444)
    assert pressure(target).severity is Severity.CRITICAL


def test_no_meminfo_but_psi_still_judges() -> None:
    target = agent(psi=PSI_STALLED, meminfo=b"garbage\n")
    result = pressure(target)
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.evidence["meminfo"] == "/proc/meminfo holds no valid MemTotal and MemAvailable"


def test_neither_source_is_unavailable() -> None:
    target = target_agent(errors={"read_file": AgentError("agent crashed")})
    result = pressure(target)
    assert result.is_unavailable
    assert "agent crashed" in result.summary


@pytest.mark.parametrize("text", [
    "", "some avg10=0.00 avg60=101.00 avg300=0.00 total=0\n", "some avg60=nan\n",
    "full avg10=0.00 avg60=1.00 avg300=0.00 total=0\n", "some avg10=1e309 avg60=-1.00\n",
    "\x1b[2Jsome avg10=0.00 avg60=0.00\n",
])
def test_implausible_psi_is_refused(text: str) -> None:
    assert memory.parse_psi(text) is None


@pytest.mark.parametrize("text", [
    "", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal: 100 kB\nMemAvailable: 200 kB\n",
    "MemTotal: 1" + "0" * 30 + " kB\nMemAvailable: 5 kB\n", "MemAvailable: 5 kB\n",
])
def test_implausible_meminfo_is_refused(text: str) -> None:
    assert memory.parse_meminfo(text) is None


def test_meminfo_first_occurrence_wins() -> None:
    parsed = memory.parse_meminfo(MEMINFO.decode() + "MemAvailable: 1 kB\n")
    assert parsed == memory.MemInfo(2014248, 1712816)


def test_the_probe_starts_with_the_reads_it_declares() -> None:
    target = target_agent()
    memory.probe_pressure(target, THRESHOLDS)
    declared = [(op, (args["path"], args["max_bytes"])) for op, args in memory.pressure_reads()]
    assert target.calls == declared


# -- memory:oom ----------------------------------------------------------------------------------
def test_no_kill_since_boot_passes_without_reading_the_journal() -> None:
    transport = FakeHost().transport()
    result = memory.probe_oom(transport, target_agent(), THRESHOLDS)
    assert (result.ok, result.probe, result.summary) == (True, "memory:oom", "no OOM kill since boot")
    assert result.evidence["oom_kills_since_boot"] == "0"
    assert transport.argvs == []


def test_kills_in_the_window_are_a_warning_naming_the_processes() -> None:
    host = FakeHost(kernel_log=OOM_LOG)
    transport = host.transport()
    target = agent(vmstat=VMSTAT.replace(b"oom_kill 0", b"oom_kill 2"))
    result = memory.probe_oom(transport, target, Thresholds(oom_window_minutes=30))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.MEMORY_PRESSURE, Severity.WARNING)
    assert result.summary == "the kernel killed 2 processes for memory in the last 30 min: python3, stress-ng"
    assert result.evidence["killed"] == ("2024-05-14T10:30:02+0000 pid 2211 (python3)\n"
                                         "2024-05-14T10:22:31+0000 pid 1240 (stress-ng)")
    assert result.evidence["oom_kills_since_boot"] == "2"
    assert transport.argvs == [("journalctl", "-k", "--reverse", "--output=short-iso", "--no-pager",
                                "--quiet", "--since=-30min")]


def test_kills_before_the_window_pass() -> None:
    target = agent(vmstat=VMSTAT.replace(b"oom_kill 0", b"oom_kill 5"))
    result = memory.probe_oom(FakeHost().transport(), target, THRESHOLDS)
    assert (result.ok, result.summary) == (True, "no OOM kill in the last 60 min")
    assert result.evidence["oom_kills_since_boot"] == "5"


def test_only_one_of_the_two_lines_still_counts_the_kill() -> None:
    lines = [line for line in OOM_LOG.decode().splitlines() if "Killed process" not in line]
    kills = memory.find_oom_kills(lines)
    assert [(k.pid, k.process) for k in kills] == [(2211, "python3"), (1240, "stress-ng")]


def test_an_old_kernel_without_the_vmstat_count_reads_the_journal() -> None:
    target = agent(vmstat=b"nr_free_pages 1\npgfault 2\n")
    result = memory.probe_oom(FakeHost(kernel_log=OOM_LOG).transport(), target, THRESHOLDS)
    assert result.evidence["oom_kills_since_boot"] == "not counted"
    assert result.severity is Severity.WARNING


def test_no_journalctl_is_unavailable_unless_nothing_was_ever_killed() -> None:
    host = FakeHost(missing={"journalctl"})
    killed = agent(vmstat=VMSTAT.replace(b"oom_kill 0", b"oom_kill 1"))
    result = memory.probe_oom(host.transport(), killed, THRESHOLDS)
    assert result.is_unavailable
    assert "journalctl is not installed" in result.summary
    assert memory.probe_oom(host.transport(), target_agent(), THRESHOLDS).ok


def test_a_hung_or_failing_journal_is_unavailable() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    killed = agent(vmstat=VMSTAT.replace(b"oom_kill 0", b"oom_kill 1"))
    assert "did not finish" in memory.probe_oom(FakeTransport(hang), killed, THRESHOLDS).summary
    failing = FakeTransport(lambda argv, stdin: (1, b"", b"No journal files were found.\n"))
    result = memory.probe_oom(failing, killed, THRESHOLDS)
    assert result.is_unavailable
    assert "No journal files were found." in result.summary


def test_hostile_process_names_are_escaped_and_the_list_capped() -> None:
    lines = [f"2024-05-14T10:00:{n % 60:02d}+0000 h kernel: Out of memory: Killed process {1000 + n} "
             f"(\x1b]0;x\x07evil{n}) total-vm:1kB" for n in range(40)]
    lines.append("kernel: Out of memory: Killed process 7 (" + "A" * 10_000 + ") total-vm:1kB")
    result = memory.evaluate_oom(3, KernelLog(tuple(lines)), 60)
    killed = result.evidence["killed"].splitlines()
    assert len(killed) == memory.MAX_LISTED_KILLS + 1
    assert killed[-1] == "... and 30 more"
    assert "\x1b" not in result.evidence["killed"] and "\x07" not in result.summary
    assert "\\x1b" in result.evidence["killed"]
    assert len(result.evidence["killed"]) <= EVIDENCE_MAX
    assert len(result.summary) < 600
    assert result.evidence["kills_in_window"] == "40"   # the 10,000-character name matches no kill line


def test_a_truncated_journal_is_noted() -> None:
    result = memory.evaluate_oom(1, KernelLog((), is_truncated=True), 60)
    assert result.ok
    assert "oldest lines" in result.evidence["journal"]


def test_vmstat_parsing() -> None:
    assert memory.parse_oom_kill_count(VMSTAT.decode()) == 0
    assert memory.parse_oom_kill_count("oom_kill 12\n") == 12
    assert memory.parse_oom_kill_count("oom_kill -1\n") is None
    assert memory.parse_oom_kill_count("oom_kill ²\n") is None
    assert memory.parse_oom_kill_count("pgfault 3\n") is None
