"""Presence (units, dpkg states) and the dependency score, each against a scripted transport."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.bootdiag.dependencies import dpkg_audit, score_component, score_on_target
from orchestrator.bootdiag.presence import check_presence, package_states
from orchestrator.bootdiag.result import FindingKind
from orchestrator.model import Component
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import ACTIVE, FAILED, NOT_FOUND, show_output

Answer = tuple[int, bytes, bytes]
APP = Component(name="app", units=("app.service",), packages=("app-pkg", "libfoo"))
PYTHON_EXEC = ("{ path=/opt/app/venv/bin/python3.11 ; argv[]=/opt/app/venv/bin/python3.11 -m app ; "
               "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; "
               "status=0/0 }")


def systemd(units: dict[str, dict[str, str]]) -> Callable[[tuple[str, ...]], Answer]:
    def show(argv: tuple[str, ...]) -> Answer:
        asked = argv[argv.index("--") + 1:]
        return 0, b"\n".join(show_output({"Id": u, **units.get(u, NOT_FOUND)}) for u in asked), b""

    return show


def transport(answers: dict[tuple[str, ...], Answer | Callable[[tuple[str, ...]], Answer]]) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> Answer:
        for prefix in sorted(answers, key=len, reverse=True):
            if argv[:len(prefix)] == prefix:
                answer = answers[prefix]
                return answer(argv) if callable(answer) else answer
        return 127, b"", f"sh: 1: {argv[0]}: not found\n".encode()

    return FakeTransport(handler)


def test_package_states_read_the_last_word_of_dpkg_status() -> None:
    out = (b"app-pkg\tinstall ok half-configured\nlibfoo\tdeinstall ok config-files\n"
           b"libfoo\tinstall ok installed\n")
    fake = transport({("dpkg-query",): (1, out, b"")})
    states = package_states(fake, ["libfoo", "app-pkg", "-rf", "gone"])
    assert states == {"-rf": "not-installed", "app-pkg": "half-configured", "gone": "not-installed",
                      "libfoo": "config-files"}
    # Names that are not package names never reach dpkg-query.
    assert fake.argvs == [("dpkg-query", "-W", r"--showformat=${Package}\t${Status}\n", "app-pkg",
                           "gone", "libfoo")]


def test_package_states_without_dpkg() -> None:
    assert package_states(transport({}), ["app-pkg"]) is None


def test_presence_lists_what_is_gone() -> None:
    fake = transport({("systemctl",): systemd({}),
                      ("dpkg-query",): (1, b"app-pkg\tinstall ok unpacked\n", b"")})
    presence = check_presence(fake, APP)
    assert presence.missing == ("unit app.service has no unit file", "package app-pkg is unpacked",
                                "package libfoo is not installed (not-installed)")
    assert presence.load_states == {"app.service": "not-found"}
    assert presence.is_checked


def test_presence_without_systemd_or_dpkg_is_unchecked() -> None:
    fake = transport({("systemctl",): (1, b"", b"System has not been booted with systemd\n")})
    presence = check_presence(fake, APP)
    assert presence.missing == ()
    assert not presence.is_checked
    assert presence.unavailable == ("unit app.service: the target does not run systemd as PID 1",
                                    "packages: dpkg-query is not available on the target")


def test_perfect_score() -> None:
    units = {"app.service": {**ACTIVE, "ExecStart": "{ path=/usr/sbin/app ; }",
                             "Requires": "network.target", "Wants": "other.service"},
             "network.target": ACTIVE, "other.service": ACTIVE}
    fake = transport({("systemctl",): systemd(units)})
    score = score_component(fake, APP, audit_output="", load_states={"app.service": "loaded"})
    assert (score.score, score.findings, score.notes) == (100, (), ())


def test_every_finding_lowers_the_score_and_says_why() -> None:
    units = {"app.service": {**ACTIVE, "ExecStart": PYTHON_EXEC,
                             "Requires": "db.service gone.service", "Wants": "cache.service"},
             "db.service": FAILED, "cache.service": FAILED}
    pip = (1, b"app 1.0 requires requests, which is not installed.\n", b"")
    fake = transport({("systemctl",): systemd(units), ("/opt/app/venv/bin/python3.11",): pip})
    audit = "The following packages are only half configured:\n libfoo    Foo library"
    score = score_component(fake, APP, audit_output=audit, load_states={"app.service": "loaded"})
    assert [(f.points, f.reason) for f in score.findings] == [
        (40, "dpkg --audit names libfoo: The following packages are only half configured:"),
        (30, "pip check (/opt/app/venv/bin/python3.11, app.service): app 1.0 requires requests, "
             "which is not installed."),
        (25, "app.service Requires= db.service, which failed"),
        (25, "app.service Requires= gone.service, which does not exist"),
        (10, "app.service Wants= cache.service, which failed"),
    ]
    assert score.score == 0
    assert ("systemctl", "show", "--property=Id,LoadState,ActiveState", "--", "db.service",
            "gone.service", "cache.service") in fake.argvs


def test_other_packages_in_dpkg_audit_cost_less() -> None:
    score = score_component(transport({}), APP, audit_output="nginx half-configured", load_states={})
    assert [(f.points, f.reason) for f in score.findings] == [
        (10, "dpkg --audit reports other packages: nginx half-configured")]
    assert score.score == 90


def test_checks_that_cannot_run_are_noted_not_scored() -> None:
    units = {"app.service": {**ACTIVE, "ExecStart": "{ path=/usr/bin/python3 ; }"}}
    fake = transport({("systemctl",): systemd(units),
                      ("/usr/bin/python3",): (1, b"", b"/usr/bin/python3: No module named pip\n")})
    score = score_component(fake, APP, audit_output=None, load_states={"app.service": "loaded"})
    assert score.score == 100
    assert score.notes == ("dpkg --audit could not run",
                           "pip check: pip is not installed for /usr/bin/python3 (app.service)")


def test_dpkg_audit_output() -> None:
    assert dpkg_audit(transport({("dpkg", "--audit"): (0, b"\n", b"")})) == ""
    assert dpkg_audit(transport({})) is None


def test_score_on_target_asks_dpkg_and_the_load_states_itself() -> None:
    units = {"app.service": {**ACTIVE, "Requires": "db.service", "Wants": "cache.service"},
             "db.service": FAILED, "cache.service": FAILED}
    fake = transport({("systemctl",): systemd(units),
                      ("dpkg", "--audit"): (0, b"app-pkg half-configured\n", b"")})
    score = score_on_target(fake, APP)
    assert [f.kind for f in score.findings] == [FindingKind.OWN_PACKAGE, FindingKind.HARD_DEPENDENCY,
                                               FindingKind.SOFT_DEPENDENCY]
    assert fake.argvs[:2] == [("dpkg", "--audit"),
                              ("systemctl", "show", "--property=LoadState", "--", "app.service")]


def test_score_on_target_notes_units_systemd_cannot_answer_for() -> None:
    fake = transport({("systemctl",): (1, b"", b"System has not been booted with systemd\n")})
    score = score_on_target(fake, APP)
    assert score.findings == ()
    assert score.notes == ("units not scored: the target does not run systemd as PID 1",
                           "dpkg --audit could not run")


def test_score_on_target_skips_dpkg_for_a_component_without_packages() -> None:
    fake = transport({("systemctl",): systemd({"app.service": ACTIVE})})
    score = score_on_target(fake, Component(name="app", units=("app.service",)))
    assert (score.score, score.notes) == (100, ())
    assert all(argv[0] == "systemctl" for argv in fake.argvs)
