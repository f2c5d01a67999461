"""environment_differences: what the VM lacks for the affected components is named, never counted as
a reproduction."""

from __future__ import annotations

from orchestrator.facts.compare import environment_differences
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.model import Component
from orchestrator.transport.fake import FakeTransport

APACHE = Component("apache2", units=("apache2.service",), packages=("apache2",),
                   config_test=("apache2ctl", "configtest"))
TARGET = TargetFacts(OsRelease("debian", "12"), "amd64",
                     packages=(Package("apache2", "2.4.62-1~deb12u2", "amd64", "ii"),))
LOADED = {"apache2.service": {"LoadState": "loaded", "UnitFileState": "enabled"}}


def vm(*, load: str = "loaded", package: bytes = b"", has_program: bool = True) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show"):
            return 0, f"Id=apache2.service\nLoadState={load}\n".encode(), b""
        if argv[0] == "dpkg-query":
            return (0 if package else 1), package, b""
        if argv[0] == "sh":
            return (0 if has_program else 1), b"", b""
        raise AssertionError(argv)
    return FakeTransport(handler, host="trb")


def test_a_vm_with_everything_is_faithful() -> None:
    diff = environment_differences(TARGET, LOADED, vm(
        package=b"apache2\t2.4.62-1~deb12u2\tamd64\tii \tinstall ok installed\n"), [APACHE])
    assert diff.is_faithful and diff.notes == ()


def test_a_template_without_the_service_is_not_faithful_and_says_why() -> None:
    diff = environment_differences(TARGET, LOADED, vm(load="not-found", has_program=False), [APACHE])
    assert not diff.is_faithful
    assert diff.missing == (
        "unit apache2.service exists on the target but not in the VM",
        "program apache2ctl (config test of apache2) is not in the VM",
        "package apache2 2.4.62-1~deb12u2 is installed on the target, not in the VM",
    )


def test_another_version_is_a_note_not_a_difference() -> None:
    diff = environment_differences(TARGET, LOADED, vm(
        package=b"apache2\t2.4.57-2\tamd64\tii \tinstall ok installed\n"), [APACHE])
    assert diff.is_faithful
    assert diff.notes == ("package apache2: 2.4.62-1~deb12u2 on the target, 2.4.57-2 in the VM",)


def test_a_unit_the_target_lacks_too_is_not_asked_about() -> None:
    transport = vm(package=b"apache2\t2.4.62-1~deb12u2\tamd64\tii \tinstall ok installed\n")
    environment_differences(TARGET, {"apache2.service": {"LoadState": "not-found"}}, transport, [APACHE])
    assert not any(a[:2] == ("systemctl", "show") for a in transport.argvs)


def test_the_program_name_never_reaches_a_shell_parser() -> None:
    hostile = Component("x", config_test=("$(reboot)", "-t"))
    transport = vm()
    environment_differences(TARGET, {}, transport, [hostile])
    (argv,) = [a for a in transport.argvs if a[0] == "sh"]
    assert argv == ("sh", "-c", 'command -v -- "$1" >/dev/null', "sh", "$(reboot)")


def test_a_config_test_program_the_target_lacks_too_is_the_fault_not_a_difference() -> None:
    # /usr/sbin/apache2ctl deleted on the target (dpkg --verify: missing), so removed in the VM too.
    diff = environment_differences(TARGET, LOADED, vm(
        package=b"apache2\t2.4.62-1~deb12u2\tamd64\tii \tinstall ok installed\n", has_program=False),
        [APACHE], target_lacks=("/usr/sbin/apache2ctl",))
    assert diff.is_faithful
    assert diff.notes == ("program apache2ctl (config test of apache2) is missing on the target too "
                          "(dpkg --verify): the fault, mirrored",)


def test_an_unfinished_package_state_mirrored_from_the_target_is_not_a_difference() -> None:
    half = TargetFacts(OsRelease("debian", "12"), "amd64",
                       packages=(Package("apache2", "2.4.62-1~deb12u2", "amd64", "iF"),))
    mirrored = b"apache2\t2.4.62-1~deb12u2\tamd64\tiF \tinstall ok half-configured\n"
    assert environment_differences(half, LOADED, vm(package=mirrored), [APACHE]).is_faithful
    unpacked = b"apache2\t2.4.62-1~deb12u2\tamd64\tiU \tinstall ok unpacked\n"   # another state
    assert not environment_differences(half, LOADED, vm(package=unpacked), [APACHE]).is_faithful
