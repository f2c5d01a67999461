"""``fstab:`` probes: entries whose device is missing, found through the agent before any reboot."""

from __future__ import annotations

import pytest

from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector, fstab
from orchestrator.detect.common import EVIDENCE_MAX
from orchestrator.errors import AgentError, AgentFailedError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from tests.unit.detect.fakes import HOST_PROBES, TEMPLATE_FSTAB, FakeHost, target_agent, usage
from tests.unit.fake_agent import FakeAgent

BOOT = Component("boot", config_paths=("/etc/fstab",), fstab=("/etc/fstab",))
UUID = "0f3c6b1e-1d5e-4b7a-9c55-2f4b2c1d9e01"
BY_UUID = f"/dev/disk/by-uuid/{UUID}"
MISSING_UUID_LINE = f"UUID={UUID}\t/mnt/vmrepair-data\text4\tdefaults\t0\t2".encode()


def agent_with(fstab_text: bytes, existing: set[str] | None = None) -> FakeAgent:
    return target_agent(files={"/etc/fstab": fstab_text},
                        existing=existing if existing is not None else set())


def probe(agent: FakeAgent, path: str = "/etc/fstab") -> ProbeResult:
    return fstab.probe_fstab(agent, BOOT, path)


def _no_raw_controls(text: str) -> bool:
    return all(ch in "\n\t" or ch.isprintable() for ch in text)


def test_the_template_fstab_passes_without_any_lookup() -> None:
    agent = target_agent()
    result = probe(agent)
    assert (result.ok, result.probe, result.kind, result.severity) == (
        True, "fstab:/etc/fstab", IssueKind.BOOT_CONFIG, Severity.INFO)
    assert (result.component, result.subject) == ("boot", "/etc/fstab")
    assert result.summary == "/etc/fstab: 1 entries, none would stop the next boot"
    # The root file system is not looked up: nothing else to check, so no manifest call at all.
    assert agent.calls == [("read_file", ("/etc/fstab", fstab.MAX_FSTAB_BYTES))]


def test_a_missing_uuid_without_nofail_is_critical_and_says_why() -> None:
    agent = agent_with(TEMPLATE_FSTAB + MISSING_UUID_LINE + b"\n")
    result = probe(agent)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.BOOT_CONFIG, Severity.CRITICAL)
    assert result.summary == (f"/etc/fstab: the mount of /mnt/vmrepair-data (UUID={UUID}) has no nofail "
                              f"and {BY_UUID} does not exist; the next boot would drop to emergency mode")
    assert result.evidence["blocking"] == (f"line 2: UUID={UUID}\t/mnt/vmrepair-data\text4\tdefaults\t0\t2 "
                                           f"-- {BY_UUID} does not exist")
    assert result.evidence["entries"] == "2"
    assert "missing_swap" not in result.evidence


def test_all_devices_are_looked_up_in_one_manifest_call() -> None:
    data = (TEMPLATE_FSTAB + MISSING_UUID_LINE + b"\n"
            b"/dev/vdz1 /srv ext4 defaults 0 2\n"
            b"LABEL=backup /backup ext4 defaults 0 2\n"
            b"/dev/vdz1 /srv2 ext4 defaults 0 2\n")
    agent = agent_with(data, existing={"/dev/disk/by-label/backup"})
    result = probe(agent)
    manifests = [arg for name, arg in agent.calls if name == "manifest"]
    assert manifests == [tuple(sorted({BY_UUID, "/dev/vdz1", "/dev/disk/by-label/backup"}))]
    assert result.severity is Severity.CRITICAL
    assert result.summary == (f"/etc/fstab: 3 mounts without nofail name sources that do not exist, first "
                              f"/mnt/vmrepair-data (UUID={UUID}): {BY_UUID} does not exist; the next boot "
                              "would drop to emergency mode")
    listed = result.evidence["blocking"].splitlines()
    assert [line.split(":")[0] for line in listed] == ["line 2", "line 3", "line 5"]


def test_devices_that_exist_pass() -> None:
    agent = agent_with(TEMPLATE_FSTAB + MISSING_UUID_LINE + b"\n", existing={BY_UUID})
    result = probe(agent)
    assert result.ok
    assert result.summary == "/etc/fstab: 2 entries, none would stop the next boot"


@pytest.mark.parametrize("options", [b"defaults,nofail", b"noauto", b"_netdev", b"x-systemd.automount"])
def test_optional_entries_with_a_missing_device_pass(options: bytes) -> None:
    result = probe(agent_with(b"/dev/vdz1 /srv ext4 " + options + b" 0 2\n"))
    assert result.ok, result.summary


def test_missing_swap_is_only_a_warning() -> None:
    result = probe(agent_with(TEMPLATE_FSTAB + b"UUID=dead-beef none swap sw 0 0\n"))
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert result.summary == ("/etc/fstab: swap on UUID=dead-beef has no nofail and "
                              "/dev/disk/by-uuid/dead-beef does not exist; the next boot waits for it "
                              "(90 s by default), then continues without it")
    assert result.evidence["missing_swap"].startswith("line 2: UUID=dead-beef none swap sw 0 0 -- ")
    assert "blocking" not in result.evidence


def test_a_blocking_mount_outranks_missing_swap_and_both_are_listed() -> None:
    data = b"/dev/vdy1 none swap sw 0 0\n/dev/vdy2 none swap sw 0 0\n/dev/vdz1 /srv ext4 defaults 0 2\n"
    result = probe(agent_with(data))
    assert result.severity is Severity.CRITICAL
    assert result.summary.startswith("/etc/fstab: the mount of /srv (/dev/vdz1) has no nofail")
    assert result.evidence["missing_swap"].count("\n") == 1
    assert result.evidence["blocking"] == ("line 3: /dev/vdz1 /srv ext4 defaults 0 2 -- "
                                           "/dev/vdz1 does not exist")


def test_several_missing_swaps_are_counted() -> None:
    result = probe(agent_with(b"/dev/vdy1 none swap sw 0 0\n/dev/vdy2 none swap sw 0 0\n"))
    assert result.summary.startswith("/etc/fstab: swap on /dev/vdy1 (and 1 more) has no nofail")


def test_bind_sources_are_checked_with_stat_not_walked_by_manifest() -> None:
    data = b"/srv/data /var/www none bind 0 0\n/srv/logs /var/log/app none bind 0 0\n"
    agent = agent_with(data, existing={"/srv/logs"})
    result = probe(agent)
    assert [name for name, _ in agent.calls] == ["read_file", "disk_usage", "disk_usage"]
    assert result.severity is Severity.CRITICAL
    assert result.summary == ("/etc/fstab: the mount of /var/www (/srv/data) has no nofail and /srv/data "
                              "does not exist; the next boot would drop to emergency mode")


def test_a_tag_naming_no_device_blocks_without_a_lookup() -> None:
    agent = agent_with(b"UUID= /data ext4 defaults 0 2\n")
    result = probe(agent)
    assert result.severity is Severity.CRITICAL
    assert "has no nofail and UUID= names no device" in result.summary
    assert [name for name, _ in agent.calls] == ["read_file"]


def test_no_fstab_at_all_passes() -> None:
    result = probe(target_agent(files={}), "/etc/fstab")
    assert result.ok
    assert result.summary == "/etc/fstab does not exist: the boot mounts nothing from it"


@pytest.mark.parametrize(("error", "expected"), [
    (AgentFailedError("target: agent read_file: /etc/fstab is larger than 1048576 bytes", host="target",
                      op="read_file", code="invalid"),
     "/etc/fstab: not checked: the agent could not read /etc/fstab: target: agent read_file: /etc/fstab is "
     "larger than 1048576 bytes"),
    (AgentError("target: agent read_file: answer is not JSON: x", host="target"),
     "/etc/fstab: not checked: the agent could not read /etc/fstab: target: agent read_file: answer is not "
     "JSON: x"),
])
def test_an_unreadable_fstab_makes_the_probe_unavailable(error: AgentError, expected: str) -> None:
    result = probe(target_agent(errors={"read_file": error}))
    assert result.is_unavailable
    assert result.summary == expected


@pytest.mark.parametrize("method", ["manifest", "disk_usage"])
def test_a_failed_lookup_makes_the_probe_unavailable(method: str) -> None:
    error = AgentFailedError(f"target: agent {method}: permission denied", host="target", op=method,
                             code="io")
    agent = target_agent(files={"/etc/fstab": b"/dev/vdz1 /srv ext4 defaults 0 2\n/srv/a /b none bind 0 0\n"},
                      errors={method: error})
    result = probe(agent)
    assert result.is_unavailable
    assert result.summary == ("/etc/fstab: not checked: the agent could not look up the devices /etc/fstab "
                              f"names: target: agent {method}: permission denied")


def test_lookups_are_capped_and_the_cap_is_reported() -> None:
    lines = b"".join(b"/dev/vdz%d /m%d ext4 defaults 0 2\n" % (i, i) for i in range(300))
    agent = agent_with(lines)
    result = probe(agent)
    (paths,) = [arg for name, arg in agent.calls if name == "manifest"]
    assert isinstance(paths, tuple) and len(paths) == fstab.MAX_DEVICE_CHECKS
    assert result.evidence["unchecked"] == ("44 paths beyond the first 256 devices and 16 other paths were "
                                            "not looked up")
    assert result.summary.startswith("/etc/fstab: 256 mounts without nofail")


def test_hostile_content_is_escaped_and_capped() -> None:
    hostile = b"/dev/vdz1\x1b[2J /mnt/\x1b]0;owned\x07" + b"A" * 5000 + b" ext4 defaults 0 2\n"
    result = probe(agent_with(hostile * 20))
    assert _no_raw_controls(result.summary)
    assert len(result.summary) < 1000
    assert len(result.evidence["blocking"]) <= EVIDENCE_MAX
    assert _no_raw_controls(result.evidence["blocking"])
    assert "\\x1b" in result.evidence["blocking"]


def test_the_detector_plans_a_probe_per_fstab_and_needs_no_units() -> None:
    watch = WatchConfig((BOOT, Component("other", fstab=("/srv/chroot/etc/fstab",))), ())
    agent = target_agent(files={"/etc/fstab": MISSING_UUID_LINE + b"\n"}, existing=set())
    det = Detector(watch, FakeHost().transport(), agent)
    assert det.probe_names == (*HOST_PROBES, "fstab:/etc/fstab", "symlinks:boot",
                               "fstab:/srv/chroot/etc/fstab")
    report = det.run()
    assert [(i.component, i.kind, i.probe) for i in report.issues] == [
        ("boot", IssueKind.BOOT_CONFIG, "fstab:/etc/fstab")]
    assert det.run_probe("fstab:/etc/fstab") == report.results[len(HOST_PROBES)]
    assert det.run_components(["other"])[0].summary == ("/srv/chroot/etc/fstab does not exist: the boot "
                                                       "mounts nothing from it")


def test_a_boot_issue_sorts_after_a_full_disk() -> None:
    watch = WatchConfig((BOOT,), ("/",))
    agent = target_agent(disk={"/": usage(97.0)}, files={"/etc/fstab": b"/dev/vdz1 /srv ext4 defaults 0 2\n"},
                      existing=set())
    report = Detector(watch, FakeHost().transport(), agent).run()
    assert [i.kind for i in report.issues] == [IssueKind.DISK_FULL, IssueKind.BOOT_CONFIG]



def test_listed_lines_reads_back_the_lines_a_result_lists() -> None:
    data = b"/dev/vdy1 none swap sw 0 0\n" + TEMPLATE_FSTAB + b"/dev/vdz1 /srv ext4 defaults 0 2\n"
    result = probe(agent_with(data))
    assert fstab.listed_lines(result.evidence) == {1, 3}
    assert fstab.listed_lines({}) == frozenset()
    # Text inside a listed line never starts a new one, whatever the fstab holds.
    hostile = b"/dev/vdz1 /srv\\012line\\0407: ext4 defaults 0 2\n/dev/vdz2 /x ext4 line\n"
    assert fstab.listed_lines(probe(agent_with(hostile)).evidence) == {1, 2}
