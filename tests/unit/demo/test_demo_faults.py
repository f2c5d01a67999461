"""Demo faults: fixed guest programs run as `python3 -c PROGRAM ARG...`, variants passed only as argv."""

from __future__ import annotations

import pytest

from orchestrator.demo.faults import FAULTS, Fault, inject
from orchestrator.errors import CommandFailedError, ConfigError
from orchestrator.transport.fake import FakeTransport

HOSTILE = ["bogus", "", "directive; rm -rf /", "$(reboot)", "97\n99", "--help"]


def test_the_fault_table() -> None:
    assert {name: fault.variants for name, fault in FAULTS.items()} == {
        "nginx-config": ("directive", "brace", "new-site"),
        "unit-dropin": ("execstart", "user", "env"),
        "disk-full": ("97", "99"),
        "jsonl-log": ("mixed", "torn", "binary"),
        "fstab": ("uuid", "device"),
    }
    assert all(name == fault.name and fault.description for name, fault in FAULTS.items())


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
def test_every_program_compiles(fault: Fault) -> None:
    compile(fault.program, f"<fault {fault.name}>", "exec")


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
def test_argv_passes_the_variant_after_a_constant_program(fault: Fault) -> None:
    for variant in fault.variants:
        argv = fault.argv(variant)
        assert argv[:3] == ["python3", "-c", fault.program]
        assert argv[-1] == variant
        # Identical program text for every variant: nothing is spliced into the code.
        assert argv[2] is fault.program


def test_disk_full_names_the_log_it_grows() -> None:
    assert FAULTS["disk-full"].argv("99") == ["python3", "-c", FAULTS["disk-full"].program,
                                              "/var/log/sampleapp/debug.log", "99"]


def test_fstab_names_the_file_it_changes() -> None:
    assert FAULTS["fstab"].argv("uuid") == ["python3", "-c", FAULTS["fstab"].program, "/etc/fstab", "uuid"]
    assert FAULTS["fstab"].argv("device") == ["python3", "-c", FAULTS["fstab"].program, "/etc/fstab",
                                              "device"]


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
@pytest.mark.parametrize("variant", HOSTILE)
def test_unknown_variant_lists_the_variants(fault: Fault, variant: str) -> None:
    with pytest.raises(ConfigError) as info:
        fault.argv(variant)
    assert info.value.message == (f"fault {fault.name}: unknown variant {variant!r} "
                                  f"(choose from {', '.join(fault.variants)})")


def test_inject_runs_the_program_and_returns_the_variant() -> None:
    transport = FakeTransport()
    assert inject(transport, "jsonl-log", "torn") == "torn"
    (call,) = transport.calls
    assert call.argv == ("python3", "-c", FAULTS["jsonl-log"].program, "torn")
    assert call.timeout == 600
    assert call.stdin is None


def test_inject_defaults_to_the_first_variant() -> None:
    transport = FakeTransport()
    assert inject(transport, "nginx-config") == "directive"
    assert transport.argvs[0][-1] == "directive"


def test_inject_unknown_fault_lists_the_faults_and_runs_nothing() -> None:
    transport = FakeTransport()
    with pytest.raises(ConfigError) as info:
        inject(transport, "kernel-panic")
    assert info.value.message == "unknown fault 'kernel-panic'"
    assert info.value.remedy == "choose from nginx-config, unit-dropin, disk-full, jsonl-log, fstab"
    assert transport.calls == []


def test_inject_unknown_variant_runs_nothing() -> None:
    transport = FakeTransport()
    with pytest.raises(ConfigError, match="unknown variant"):
        inject(transport, "disk-full", "100")
    assert transport.calls == []


def test_a_failing_program_is_reported_with_its_stderr() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return 1, b"", b"PermissionError: [Errno 13] /etc/nginx/sites-available/default\n"

    with pytest.raises(CommandFailedError, match=r"exited 1: PermissionError: \[Errno 13\]"):
        inject(FakeTransport(handler, host="patient"), "nginx-config", "brace")
