"""writable:<path> probes: existence, type and write permission of a unit's data directories, decided
from a non-recursive manifest and the target's /etc/passwd and /etc/group."""

from __future__ import annotations

import pytest

from orchestrator.agent.api import manifest_args
from orchestrator.detect import writable
from orchestrator.detect.shared import RunShared
from orchestrator.detect.writable import Accounts, identity, parse_accounts, probe_writable
from orchestrator.errors import AgentError
from orchestrator.model import Component, IssueKind, Severity
from tests.unit.fake_agent import FakeAgent, Node, call_brief

DATA = "/var/lib/sampleapp"
APP = Component("sampleapp", units=("sampleapp.service",), user="sampleapp", writable_paths=(DATA,))
#: The template's accounts (useradd --system --user-group sampleapp), and sampleapp in adm.
PASSWD = (b"root:x:0:0:root:/root:/bin/bash\n"
          b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          b"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
          b"sampleapp:x:999:997:sampleapp service:/var/lib/sampleapp:/usr/sbin/nologin\n")
GROUP = (b"root:x:0:\nadm:x:4:syslog,sampleapp\nwww-data:x:33:\nsampleapp:x:997:\n")
NAMES = {0: "root", 4: "adm", 33: "www-data", 997: "sampleapp", 999: "sampleapp"}


def host(mode: int = 0o750, uid: int = 999, gid: int = 997, **parents: int) -> FakeAgent:
    """The template: /var/lib/sampleapp made by ``install -d -o sampleapp -g sampleapp -m 0750``;
    ``parents`` maps "var_lib" (/var/lib) or "var" to another mode."""
    agent = FakeAgent(files={"/etc/passwd": PASSWD, "/etc/group": GROUP}, names=NAMES, record=call_brief)
    agent.put("/var", Node("dir", mode=parents.get("var", 0o755)))
    agent.put("/var/lib", Node("dir", mode=parents.get("var_lib", 0o755)))
    agent.put(DATA, Node("dir", mode=mode, uid=uid, gid=gid))
    agent.put(f"{DATA}/interactions.jsonl", Node("file", b"{}\n", 0o640, uid, gid))
    return agent


def probe(agent: FakeAgent, component: Component = APP, path: str = DATA):
    return probe_writable(agent, writable.shared_accounts(agent), component, path)


def test_the_templates_data_directory_is_writable_by_sampleapp() -> None:
    agent = host()
    result = probe(agent)
    assert (result.ok, result.probe, result.kind) == (True, f"writable:{DATA}", IssueKind.PERMISSIONS)
    assert result.summary == ("/var/lib/sampleapp is writable by sampleapp (mode 0750, owner "
                              "sampleapp:sampleapp (999:997))")
    assert result.evidence["user"] == "sampleapp (uid 999, groups 4 997)"
    # One non-recursive manifest of the way there, then the two account files.
    assert agent.calls == [("manifest", "/var,/var/lib,/var/lib/sampleapp"),
                           ("read_file", "/etc/passwd"), ("read_file", "/etc/group")]


def test_root_owned_and_not_group_writable_is_a_permissions_fault() -> None:
    result = probe(host(mode=0o755, uid=0, gid=0))   # chown root:root, chmod 0755
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.PERMISSIONS, Severity.CRITICAL)
    assert result.summary == ("/var/lib/sampleapp is not writable by sampleapp (mode 0755, owner root:root "
                              "(0:0)); sampleapp cannot write its data")
    assert (result.evidence["mode"], result.evidence["owner"]) == ("0755", "root:root")
    assert result.evidence["remedy"] == "chown sampleapp:sampleapp /var/lib/sampleapp"
    assert "ReadWritePaths= it does not" in result.evidence["systemd"]


def test_the_owners_bits_decide_for_the_owner_whatever_the_group_may_do() -> None:
    result = probe(host(mode=0o570))
    assert not result.ok
    assert result.evidence["remedy"] == "chmod u+rwx /var/lib/sampleapp"


def test_write_without_search_is_not_enough() -> None:
    assert not probe(host(mode=0o650)).ok


@pytest.mark.parametrize(("mode", "uid", "gid"), [
    (0o770, 0, 997),     # root:sampleapp, group-writable
    (0o770, 0, 4),       # root:adm, and sampleapp is a member of adm
    (0o1777, 0, 0),      # sticky and world-writable, like /tmp
])
def test_group_and_other_bits_count_for_the_groups_and_the_others(mode: int, uid: int, gid: int) -> None:
    assert probe(host(mode=mode, uid=uid, gid=gid)).ok


def test_group_is_the_units_group_not_the_users_primary_one() -> None:
    web = Component("web", user="sampleapp", group="www-data", writable_paths=(DATA,))
    assert probe(host(mode=0o770, uid=0, gid=33), web).ok
    # With Group=www-data, sampleapp's own group is no longer the process's.
    result = probe(host(mode=0o770, uid=0, gid=997), web)
    assert not result.ok
    assert result.evidence["remedy"] == "chown sampleapp:www-data /var/lib/sampleapp"


def test_a_directory_on_the_way_that_cannot_be_searched_blocks_it() -> None:
    result = probe(host(var_lib=0o750))
    assert (result.ok, result.kind) == (False, IssueKind.PERMISSIONS)
    assert result.summary == ("sampleapp cannot reach /var/lib/sampleapp: /var/lib (mode 0750, owner "
                              "root:root (0:0)) is not searchable by it")
    assert result.evidence["remedy"] == "chmod o+x /var/lib"


def test_a_missing_directory_is_path_missing_with_the_install_remedy() -> None:
    agent = host()
    del agent.fs[f"{DATA}/interactions.jsonl"], agent.fs[DATA]
    result = probe(agent)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.PATH_MISSING, Severity.CRITICAL)
    assert result.summary == ("/var/lib/sampleapp does not exist (/var/lib/sampleapp is missing); "
                              "sampleapp cannot write its data there")
    assert result.evidence["remedy"] == "install -d -o sampleapp -m 0750 /var/lib/sampleapp"
    # Whether it exists is known before the accounts are needed.
    assert [m for m, _ in agent.calls] == ["manifest"]


def test_a_missing_parent_is_named() -> None:
    agent = FakeAgent(files={"/etc/passwd": PASSWD, "/etc/group": GROUP})
    result = probe(agent, Component("x", user="sampleapp", group="sampleapp"), "/srv/app/data")
    assert result.evidence["missing"] == "/srv"
    assert result.evidence["remedy"] == "install -d -o sampleapp -g sampleapp -m 0750 /srv/app/data"


def test_a_file_or_a_foreign_symlink_in_its_place_is_path_missing() -> None:
    agent = host()
    agent.fs[DATA] = Node("file", b"oops")
    result = probe(agent)
    assert (result.kind, result.summary) == (IssueKind.PATH_MISSING, "/var/lib/sampleapp is a file, not the "
                                             "directory sampleapp writes to")
    assert result.evidence["remedy"].startswith("move /var/lib/sampleapp aside, then install -d")
    agent.fs[DATA] = Node("symlink", link="/mnt/elsewhere")
    result = probe(agent)
    assert (result.ok, result.kind) == (False, IssueKind.PATH_MISSING)
    assert result.evidence["link"] == "/mnt/elsewhere"


def test_systemds_dynamic_user_layout_passes() -> None:
    agent = host()
    agent.fs["/var/lib/private"] = Node("dir", mode=0o700)
    agent.fs[DATA] = Node("symlink", link="private/sampleapp")
    result = probe(agent)
    assert result.ok
    assert "DynamicUser=" in result.summary


def test_a_unit_running_as_root_needs_only_an_existing_directory() -> None:
    agent = host(mode=0o700, uid=0, gid=0)
    for user in ("", "root", "0"):
        assert probe(agent, Component("r", user=user, writable_paths=(DATA,))).ok
    assert "read_file" not in [m for m, _ in agent.calls]


def test_users_only_nss_knows_make_it_unavailable() -> None:
    result = probe(host(), Component("dyn", user="dynamic-user-1"))
    assert result.is_unavailable
    assert "user 'dynamic-user-1' is not in /etc/passwd" in result.summary
    assert probe(host(), Component("g", user="sampleapp", group="nogroup")).is_unavailable


def test_a_numeric_user_is_taken_as_its_uid() -> None:
    assert probe(host(), Component("n", user="999")).ok
    # A uid without an account, with a Group=: judged (no supplementary groups), here not writable.
    result = probe(host(mode=0o750, uid=0, gid=0), Component("n", user="4242", group="997"))
    assert (result.ok, result.is_unavailable) == (False, False)
    assert result.evidence["user"] == "4242 (uid 4242, groups 997)"


def test_unreadable_accounts_and_agent_failures_make_it_unavailable() -> None:
    agent = host()
    del agent.fs["/etc/group"]
    assert "could not read /etc/group" in probe(agent).summary
    failing = FakeAgent(errors={"manifest": AgentError("target: agent manifest: timed out")})
    result = probe(failing)
    assert result.is_unavailable
    assert "timed out" in result.summary


@pytest.mark.parametrize("path", ["var/lib/x", "/var/lib/x/", "/var/../etc", "/", "//var"])
def test_a_path_that_is_not_plain_is_not_asked_about(path: str) -> None:
    agent = host()
    assert probe(agent, APP, path).is_unavailable
    assert agent.calls == []
    assert writable.first_reads(path) == ()


def test_an_optional_component_gets_warnings() -> None:
    optional = Component("opt", vital=False, user="sampleapp", writable_paths=(DATA,))
    assert probe(host(mode=0o755, uid=0, gid=0), optional).severity is Severity.WARNING


def test_first_reads_are_the_manifest_the_probe_makes() -> None:
    assert writable.first_reads(DATA) == (
        ("manifest", manifest_args(["/var", "/var/lib", DATA], recursive=False)),)
    assert writable.account_reads() == (
        ("read_file", {"path": "/etc/passwd", "max_bytes": writable.MAX_ACCOUNTS_BYTES}),
        ("read_file", {"path": "/etc/group", "max_bytes": writable.MAX_ACCOUNTS_BYTES}))


def test_the_accounts_are_read_once_per_run_for_every_probe() -> None:
    agent = host()
    agent.put("/var/log/sampleapp", Node("dir", mode=0o750, uid=999, gid=997))
    accounts = writable.shared_accounts(agent)
    with accounts.scope():
        for path in (DATA, "/var/log/sampleapp"):
            assert probe_writable(agent, accounts, APP, path).ok
    assert [c for c in agent.calls if c[0] == "read_file"] == [("read_file", "/etc/passwd"),
                                                             ("read_file", "/etc/group")]


def test_parse_accounts_skips_what_is_not_an_account() -> None:
    hostile = ("# comment\n+nisuser::::::\n-x:x:1:1::/:/bin/sh\nshort:x:1\nbad:x:1e3:0::/:/bin/sh\n"
               "sup²:x:²:0::/:/bin/sh\nroot:x:0:0:root:/root:/bin/bash\nroot:x:5:5:again:/:/bin/sh\n"
               "spaced name:x:7:7::/:/bin/sh\n" + "junk\x00\x1b:::\n" * 1000)
    accounts = parse_accounts(hostile, "adm:x:4:a, b ,,c\nbroken:x:notanumber:a\n")
    assert dict(accounts.users) == {"root": (0, 0), "spaced name": (7, 7)}
    assert dict(accounts.member_of) == {"a": frozenset({4}), "b": frozenset({4}), "c": frozenset({4})}
    assert accounts.group_name(4) == "adm"
    assert accounts.group_name(12) == "12"


def test_identity_follows_systemd() -> None:
    accounts = parse_accounts(PASSWD.decode(), GROUP.decode())
    who = identity(accounts, "sampleapp", "")
    assert not isinstance(who, str)
    assert (who.uid, who.gid, who.groups) == (999, 997, frozenset({997, 4}))
    assert identity(Accounts(), "4242", "") == ("uid 4242 has no /etc/passwd entry and the unit names no "
                                                "Group=")


def test_shared_accounts_declare_their_reads() -> None:
    shared = writable.shared_accounts(FakeAgent())
    assert isinstance(shared, RunShared)
    assert shared.first_reads == writable.account_reads()


class _Batch:
    """A ShowBatch that answered this run's systemctl show."""

    def __init__(self, answers: dict[str, dict[str, str]]) -> None:
        self.answers = answers

    def take(self, unit: str) -> object:
        from orchestrator.detect.units import UnitShow
        props = self.answers.get(unit)
        return None if props is None else UnitShow(props)


def test_the_units_current_user_is_judged_not_the_one_discovered() -> None:
    # Discovered while a drop-in named an account that does not exist; the unit runs as sampleapp now.
    discovered = Component("sampleapp", units=("sampleapp.service",), user="sampleapp-svc",
                           group="", writable_paths=("/var/lib/sampleapp",))
    batch = _Batch({"sampleapp.service": {"User": "sampleapp", "Group": "sampleapp"}})
    current = writable.current_identity(discovered, batch)  # type: ignore[arg-type]
    assert (current.user, current.group) == ("sampleapp", "sampleapp")
    # No answer for the unit (a single-unit run, systemctl missing): the discovered identity stands.
    assert writable.current_identity(discovered, _Batch({})) is discovered  # type: ignore[arg-type]
    assert writable.current_identity(discovered, None) is discovered
