"""sysdir:<path> probes: every rule, optional paths, symlinks, sudo's drop-in rules, hostile answers."""

from __future__ import annotations

import pytest

from orchestrator.detect import sysdirs
from orchestrator.detect.common import EVIDENCE_MAX, HOST_COMPONENT
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import HOST_FILES, SHADOW_GID, FakeHost, target_agent
from tests.unit.fake_agent import FakeAgent, Node, file_node

SUDOERS = HOST_FILES["/etc/sudoers"].data


def agent_with(files: dict[str, Node | None]) -> FakeAgent:
    """The healthy target with some of its files replaced (``None``: removed); paths outside its
    tree do not exist."""
    agent = target_agent(existing=set())
    for path, node in files.items():
        if node is None:
            del agent.fs[path]
        else:
            agent.fs[path] = node
    return agent


def probe(path: str, *, host: FakeHost | None = None, agent: FakeAgent | None = None) -> ProbeResult:
    return sysdirs.probe_path((host or FakeHost()).transport(), agent or target_agent(), path)


def failed_critically(result: ProbeResult, kind: IssueKind = IssueKind.PERMISSIONS) -> bool:
    return (result.ok, result.is_unavailable, result.kind, result.severity) == (
        False, False, kind, Severity.CRITICAL)


# -- the healthy host ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", list(sysdirs.RULES))
def test_every_path_of_a_healthy_debian_host_passes(path: str) -> None:
    result = probe(path)
    assert (result.ok, result.is_unavailable) == (True, False), result.summary
    assert (result.probe, result.component, result.kind) == (f"sysdir:{path}", HOST_COMPONENT,
                                                             IssueKind.PERMISSIONS)
    assert result.subject == path


def test_passing_evidence_shows_mode_owner_and_group() -> None:
    result = probe("/etc/shadow")
    assert result.evidence == {"type": "file", "mode": "0640", "owner": "root (uid 0)",
                               "group": "shadow (gid 42)"}
    assert result.summary == "/etc/shadow is file 0640 root:shadow"


def test_directories_are_read_with_stat_and_files_with_one_manifest_each() -> None:
    transport, agent = FakeHost().transport(), target_agent()
    sysdirs.probe_path(transport, agent, "/tmp")
    sysdirs.probe_path(transport, agent, "/etc/shadow")
    assert transport.argvs == [("stat", "-L", "--format=%f:%u:%g:%U:%G", "--", "/tmp")]
    assert agent.calls == [("manifest", ("/etc/shadow",))]
    assert sysdirs.first_reads("/etc/shadow") == (("manifest", {"paths": ["/etc/shadow"]}),)
    assert sysdirs.first_reads("/tmp") == ()


def test_a_run_stats_every_directory_with_one_command() -> None:
    """One guest process per detection round for the statted directories, not one each."""
    from orchestrator.detect import Detector
    from tests.unit.template_watch import template_watch

    transport = FakeHost().transport()
    results = {r.probe: r for r in Detector(template_watch(), transport, target_agent()).run_all()}
    stats = [argv for argv in transport.argvs if argv[0] == "stat"]
    assert stats == [("stat", "-L", "--format=%n\t%f:%u:%g:%U:%G", "--", *sysdirs.statted_paths())]
    assert all(results[sysdirs.probe_name(p)].ok for p in sysdirs.statted_paths())


def test_one_stat_of_all_matches_lines_by_name_and_drops_hostile_ones() -> None:
    paths = ("/tmp", "/var/tmp", "/usr")
    transport = FakeTransport(lambda argv, _stdin: (
        1, b"/usr\t41ed:0:0:root:root\n/etc/evil\t41ff:0:0:root:root\n/tmp\tgarbage\n"
           b"/usr\t41ff:0:0:root:root\n",
        b"stat: cannot statx '/var/tmp': No such file or directory\n"))
    found = sysdirs.stat_all(transport, paths)
    assert found["/var/tmp"] is None
    usr = found["/usr"]
    assert isinstance(usr, sysdirs.PathMeta) and usr.mode == 0o755   # the first line for a name counts
    assert isinstance(found["/tmp"], str) and "exited 1" in found["/tmp"]   # garbled: unknown, not fine
    assert set(found) == set(paths)


# -- /tmp and /var/tmp -----------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "problem"), [
    (0o40755, "mode 0755, not 1777 (not sticky, not writable by others)"),
    (0o40777, "mode 0777, not 1777 (not sticky)"),
    (0o41775, "mode 1775, not 1777 (not writable by others)"),
    (0o41733, "mode 1733, not 1777"),
])
def test_tmp_without_sticky_or_world_write_is_critical_with_the_remedy(mode: int, problem: str) -> None:
    host = FakeHost()
    host.paths["/tmp"] = (mode, 0, 0, "root", "root")
    result = probe("/tmp", host=host)
    assert failed_critically(result)
    assert result.summary.startswith(f"/tmp: {problem}: services and users")
    assert result.evidence["mode"] == f"{mode & 0o7777:04o}"
    assert result.evidence["remedy"] == "chown root:root /tmp && chmod 1777 /tmp"
    assert result.evidence["expected"] == "a directory of mode 1777 owned by root"


def test_setgid_on_top_of_1777_is_not_reported() -> None:
    host = FakeHost()
    host.paths["/var/tmp"] = (0o43777, 0, 0, "root", "root")
    assert probe("/var/tmp", host=host).ok


def test_tmp_owned_by_a_user_is_critical() -> None:
    host = FakeHost()
    host.paths["/var/tmp"] = (0o41777, 1000, 1000, "alice", "alice")
    result = probe("/var/tmp", host=host)
    assert failed_critically(result)
    assert result.evidence["problems"] == "owned by alice (uid 1000), not root"


def test_tmp_that_is_a_file_or_missing_is_critical() -> None:
    host = FakeHost()
    host.paths["/tmp"] = (0o101777, 0, 0, "root", "root")
    result = probe("/tmp", host=host)
    assert failed_critically(result)
    assert result.evidence["problems"] == "is a file, not a directory"
    del host.paths["/tmp"]
    result = probe("/tmp", host=host)
    assert failed_critically(result, IssueKind.PATH_MISSING)
    assert result.summary.startswith("/tmp does not exist: ")
    assert result.evidence["remedy"] == "mkdir -m 1777 /tmp"


# -- system directories ----------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "info", "problem"), [
    ("/", (0o40775, 0, 4, "root", "adm"), "writable by group"),
    ("/etc", (0o40757, 0, 0, "root", "root"), "writable by others"),
    ("/usr", (0o40755, 1000, 0, "alice", "root"), "owned by alice (uid 1000), not root"),
    ("/var", (0o40750, 0, 0, "root", "root"), "not searchable by others"),
    ("/etc", (0o40777, 0, 0, "root", "root"), "writable by group and others"),
])
def test_system_directories(path: str, info: tuple[int, int, int, str, str], problem: str) -> None:
    host = FakeHost()
    host.paths[path] = info
    result = probe(path, host=host)
    assert failed_critically(result)
    assert result.evidence["problems"] == problem
    assert result.evidence["remedy"] == f"chown root:root {path} && chmod 0755 {path}"


def test_a_missing_stat_or_a_hung_one_is_unavailable() -> None:
    assert probe("/usr", host=FakeHost(missing={"stat"})).is_unavailable

    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    result = sysdirs.probe_path(FakeTransport(hang), target_agent(), "/usr")
    assert result.is_unavailable
    assert "did not finish within 30 s" in result.summary


def test_a_stat_error_that_is_not_a_missing_path_is_unavailable() -> None:
    transport = FakeTransport(lambda argv, stdin: (1, b"", b"stat: cannot statx '/var': Permission denied\n"))
    result = sysdirs.probe_path(transport, target_agent(), "/var")
    assert result.is_unavailable
    assert "Permission denied" in result.summary


@pytest.mark.parametrize("stdout", [
    b"", b"garbage\n", b"41ed:0:0:root\n", b"zzzz:0:0:root:root\n", b"41ed:-1:0:root:root\n",
    b"41ed:0:0:root:root:extra\n", b"1" * 100 + b":0:0:root:root\n", b"41ed\t0\t0\troot\troot\n",
])
def test_garbled_stat_output_is_unavailable_never_a_verdict(stdout: bytes) -> None:
    transport = FakeTransport(lambda argv, stdin: (0, stdout, b""))
    assert sysdirs.probe_path(transport, target_agent(), "/etc").is_unavailable


def test_hostile_owner_names_are_escaped_and_capped() -> None:
    host = FakeHost()
    evil = "\x1b]0;owned\x07" + "x" * 5000
    host.paths["/tmp"] = (0o40777, 1000, 1000, evil, "g")
    result = probe("/tmp", host=host)
    assert failed_critically(result)
    assert "\x1b" not in result.summary and "\x07" not in result.summary
    assert "\\x1b" in result.evidence["owner"]
    assert len(result.evidence["owner"]) < 200
    assert len(result.summary) < 1000


# -- /etc/shadow, /etc/gshadow ---------------------------------------------------------------------
@pytest.mark.parametrize(("node", "problem"), [
    (file_node(b"x", 0o644, gid=SHADOW_GID), "readable or writable by others"),
    (file_node(b"x", 0o642, gid=SHADOW_GID), "readable or writable by others"),
    (file_node(b"x", 0o640, uid=1000, gid=SHADOW_GID), "owned by 1000 (uid 1000), not root"),
    (file_node(b"x", 0o640, gid=33), "group www-data (gid 33), not root or shadow"),
])
def test_shadow_files_must_not_leak(node: Node, problem: str) -> None:
    result = probe("/etc/shadow", agent=agent_with({"/etc/shadow": node}))
    assert failed_critically(result)
    assert result.evidence["problems"] == problem
    assert "password hashes leak" in result.summary
    assert result.evidence["remedy"] == "chown root:shadow /etc/shadow && chmod 0640 /etc/shadow"


def test_shadow_root_root_0000_passes_like_on_red_hat() -> None:
    assert probe("/etc/shadow", agent=agent_with({"/etc/shadow": file_node(b"x", 0o000)})).ok


def test_missing_gshadow_passes_and_missing_shadow_is_critical() -> None:
    result = probe("/etc/gshadow", agent=agent_with({"/etc/gshadow": None}))
    assert (result.ok, result.summary) == (True, "/etc/gshadow does not exist (optional)")
    result = probe("/etc/shadow", agent=agent_with({"/etc/shadow": None}))
    assert failed_critically(result, IssueKind.PATH_MISSING)
    assert "/etc/shadow-" in result.evidence["remedy"]


# -- /etc/passwd, /etc/group -----------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "problem"), [
    (0o666, "writable by group and others"), (0o664, "writable by group"),
    (0o600, "not readable by others"),
])
def test_account_files(mode: int, problem: str) -> None:
    result = probe("/etc/passwd", agent=agent_with({"/etc/passwd": file_node(b"x", mode)}))
    assert failed_critically(result)
    assert result.evidence["problems"] == problem


def test_a_directory_where_group_should_be_is_critical() -> None:
    agent = agent_with({"/etc/group": None})
    agent.mkdir("/etc/group")
    result = probe("/etc/group", agent=agent)
    assert failed_critically(result)
    assert result.evidence["problems"] == "is a dir, not a regular file"


# -- /etc/sudoers and /etc/sudoers.d ---------------------------------------------------------------
@pytest.mark.parametrize(("mode", "uid", "gid", "problem"), [
    (0o666, 0, 0, "world writable"),
    (0o442, 0, 0, "world writable"),
    (0o460, 0, 27, "writable by group sudo (gid 27), not root"),
    (0o440, 1000, 0, "owned by 1000 (uid 1000), not root"),
])
def test_sudoers_follows_sudos_own_rule(mode: int, uid: int, gid: int, problem: str) -> None:
    agent = agent_with({"/etc/sudoers": file_node(SUDOERS, mode, uid, gid)})
    agent.names[27] = "sudo"
    result = probe("/etc/sudoers", agent=agent)
    assert failed_critically(result)
    assert result.evidence["problems"] == problem
    assert result.summary.endswith("sudo refuses to run: nobody can become root through it")
    assert result.evidence["remedy"] == "chown root:root /etc/sudoers && chmod 0440 /etc/sudoers"


@pytest.mark.parametrize("mode", [0o440, 0o400, 0o660, 0o644])
def test_sudoers_modes_sudo_accepts_pass(mode: int) -> None:
    # Group write is fine for group root (sudoers_gid), reading by others too: sudo accepts both.
    assert probe("/etc/sudoers", agent=agent_with({"/etc/sudoers": file_node(SUDOERS, mode)})).ok


def test_no_sudo_installed_passes() -> None:
    agent = agent_with({"/etc/sudoers": None, "/etc/sudoers.d/README": None})
    agent.dirs.discard("/etc/sudoers.d")
    assert probe("/etc/sudoers", agent=agent).summary == "/etc/sudoers does not exist (optional)"
    assert probe("/etc/sudoers.d", agent=agent).ok


def test_a_world_writable_dropin_is_critical_and_listed() -> None:
    agent = target_agent()
    agent.file("/etc/sudoers.d/90-cloud-init-users", b"admin ALL=(ALL) NOPASSWD:ALL\n", 0o666)
    result = probe("/etc/sudoers.d", agent=agent)
    assert failed_critically(result)
    assert result.evidence["insecure_dropins"] == (
        "/etc/sudoers.d/90-cloud-init-users: mode 0666 root:root: world writable")
    assert result.evidence["dropins"] == "2"
    assert "sudo skips it" in result.summary


def test_dropins_sudo_never_reads_are_not_judged() -> None:
    agent = target_agent()
    for name in ("README.dpkg-old", "admins~", "x.bak"):
        agent.file(f"/etc/sudoers.d/{name}", b"junk\n", 0o666)
    agent.file("/etc/sudoers.d/sub/deeper", b"junk\n", 0o666)
    result = probe("/etc/sudoers.d", agent=agent)
    assert result.ok
    assert result.evidence["dropins"] == "1"   # README; sudo skips the directory "sub" too


def test_a_symlinked_dropin_is_noted_not_judged() -> None:
    agent = target_agent()
    agent.symlink("/etc/sudoers.d/shared", "/srv/shared/sudoers")
    result = probe("/etc/sudoers.d", agent=agent)
    assert result.ok
    assert result.evidence["unchecked_symlinks"] == "/etc/sudoers.d/shared"


def test_an_insecure_sudoers_d_directory_is_critical() -> None:
    agent = target_agent()
    agent.fs["/etc/sudoers.d"] = Node("dir", mode=0o777)
    result = probe("/etc/sudoers.d", agent=agent)
    assert failed_critically(result)
    assert result.evidence["problems"] == "world writable"


def test_many_insecure_dropins_are_capped() -> None:
    agent = target_agent()
    for n in range(40):
        agent.file(f"/etc/sudoers.d/user{n:02d}\x1b[31m", b"x\n", 0o666)
    result = probe("/etc/sudoers.d", agent=agent)
    listed = result.evidence["insecure_dropins"].splitlines()
    assert len(listed) == sysdirs.MAX_LISTED + 1
    assert listed[-1] == "... and 30 more"
    assert "\x1b" not in result.evidence["insecure_dropins"]
    assert len(result.evidence["insecure_dropins"]) <= EVIDENCE_MAX
    assert "(and 39 more)" in result.summary


# -- what cannot be judged -------------------------------------------------------------------------
def test_a_symlink_where_a_file_should_be_is_unavailable() -> None:
    agent = agent_with({"/etc/passwd": None})
    agent.symlink("/etc/passwd", "/usr/share/base-passwd/passwd.master")
    result = probe("/etc/passwd", agent=agent)
    assert result.is_unavailable
    assert "symlink (to /usr/share/base-passwd/passwd.master)" in result.summary


def test_an_agent_failure_is_unavailable() -> None:
    agent = target_agent(errors={"manifest": AgentError("agent crashed")})
    result = probe("/etc/shadow", agent=agent)
    assert result.is_unavailable
    assert "agent crashed" in result.summary
