"""read_facts over a fake target: every question asked read-only, answers validated, gaps noted."""

from __future__ import annotations

from orchestrator.facts import Unpackaged, application_roots, read_facts, read_unpackaged
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.model import Component
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import FakeAgent

SHOW = (
    "Id=app.service\nExecStartPre=\n"
    "ExecStart={ path=/opt/app/venv/bin/python ; argv[]=python -m app ; ignore_errors=no }\n"
    "ExecStartPost=\nExecReload={ path=/usr/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no }\n"
    "ExecStop=\nWorkingDirectory=/srv/app\nRootDirectory=\n"
    "EnvironmentFiles=/etc/default/app (ignore_errors=yes)\n"
)
PACKAGES = ("nginx-common\t1.22.1-9+deb12u9\tall\tii \tinstall ok installed\n"
            "mariadb-server\t1:10.11.6-0+deb12u1\tamd64\tii \thold ok installed\n")


def target(answers: dict[str, tuple[int, bytes, bytes]]) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return answers.get(argv[0] + " " + argv[1], (0, b"", b""))
    return FakeTransport(handler)


def healthy_answers() -> dict[str, tuple[int, bytes, bytes]]:
    return {
        "dpkg --print-architecture": (0, b"amd64\n", b""),
        "dpkg-query -W": (0, PACKAGES.encode(), b""),
        "systemctl show": (0, SHOW.encode(), b""),
        # /usr/bin/kill is owned (by procps); /srv/app and the venv are not; /etc/default/app is not.
        "dpkg-query -S": (1, b"procps: /usr/bin/kill\n",
                          b"dpkg-query: no path found matching pattern /srv/app\n"),
    }


def agent() -> FakeAgent:
    return FakeAgent(files={
        "/etc/os-release": b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
        "/etc/apt/sources.list": b"deb http://deb.debian.org/debian bookworm main\n",
        "/etc/apt/sources.list.d/extra.sources":
            b"Types: deb\nURIs: http://x.invalid/a\nSuites: s\nComponents: c\n",
        "/etc/apt/sources.list.d/ignored.txt": b"deb http://never.invalid/ x y\n",
    }, symlinks={"/etc/systemd/system/null.service": "/dev/null",
                 "/etc/systemd/system/multi-user.target.wants/app.service": "/lib/systemd/app.service"})


APP = Component("app", units=("app.service",))


def test_facts_of_a_debian_target() -> None:
    transport = target(healthy_answers())
    facts = read_facts(transport, agent(), [APP])
    assert (facts.os.id, facts.os.codename, facts.arch) == ("debian", "bookworm", "amd64")
    assert [s.uri for s in facts.sources] == ["http://deb.debian.org/debian", "http://x.invalid/a"]
    assert facts.held == ("mariadb-server",)
    assert facts.package("nginx-common") is not None
    assert facts.unit_state("null.service") == "masked"
    assert facts.unit_state("app.service") == "enabled"
    assert {(u.path, u.source) for u in facts.unpackaged} == {
        ("/opt/app/venv/bin/python", "ExecStart"), ("/srv/app", "WorkingDirectory"),
        ("/etc/default/app", "EnvironmentFiles")}
    assert facts.notes == ()
    dpkg_s = next(a for a in transport.argvs if a[:2] == ("dpkg-query", "-S"))
    assert dpkg_s[2] == "--"  # a path is never read as an option
    assert ("dpkg-query", "-W", "-f", PACKAGE_FORMAT) in transport.argvs
    assert "masked" in facts.summary() and "1 held" in facts.summary()


def test_a_target_without_dpkg_or_systemd_gives_notes_not_errors() -> None:
    answers = dict.fromkeys(healthy_answers(), (127, b"", b"sh: not found"))
    answers["uname -m"] = (0, b"aarch64\n", b"")
    facts = read_facts(target(answers), FakeAgent(), [APP])
    assert facts.os.id == "unknown" and facts.arch == "arm64"
    assert facts.packages == () and facts.unpackaged == ()
    text = " | ".join(facts.notes)
    assert "dpkg-query is not installed" in text and "no readable os-release" in text


def test_hostile_answers_are_refused_and_noted() -> None:
    answers = healthy_answers()
    answers["dpkg --print-architecture"] = (0, b"amd64; rm -rf /\n", b"")
    answers["uname -m"] = (0, b"x86_64\n", b"")
    answers["dpkg-query -W"] = (0, b"../../x\t1\tamd64\tii \tinstall ok installed\n" + PACKAGES.encode(), b"")
    facts = read_facts(target(answers), agent(), [APP])
    assert facts.arch == "amd64"                       # from uname, the dpkg answer was refused
    assert [p.name for p in facts.packages] == ["nginx-common", "mariadb-server"]
    assert any("1 package lines refused" in n for n in facts.notes)


def test_no_affected_unit_means_no_unit_questions() -> None:
    transport = target(healthy_answers())
    read_facts(transport, agent(), [Component("disk")])
    assert not any(a[:2] in {("systemctl", "show"), ("dpkg-query", "-S")} for a in transport.argvs)


def test_application_roots_carry_the_components_own_code() -> None:
    used = (Unpackaged("app.service", "/opt/app/venv/bin/python", "ExecStart"),
            Unpackaged("app.service", "/opt/app", "WorkingDirectory"),
            Unpackaged("app.service", "/srv/data/site", "WorkingDirectory"),
            Unpackaged("app.service", "/usr/local/bin/helper", "ExecStartPre"),
            Unpackaged("app.service", "/etc/default/app", "EnvironmentFiles"),
            Unpackaged("app.service", "/home/alice/app", "WorkingDirectory"))
    assert application_roots(used, covered=("/etc/default/app",)) == [
        "/opt/app", "/srv/data", "/usr/local/bin/helper"]


def test_read_unpackaged_alone_and_reused_by_read_facts() -> None:
    transport = target(healthy_answers())
    used, notes = read_unpackaged(transport, [APP])
    assert {u.path for u in used} == {"/opt/app/venv/bin/python", "/srv/app", "/etc/default/app"}
    asked = len(transport.argvs)
    facts = read_facts(transport, agent(), [APP], unpackaged=(used, notes))
    assert facts.unpackaged == used
    assert not any(a[:2] in {("systemctl", "show"), ("dpkg-query", "-S")} for a in transport.argvs[asked:])
