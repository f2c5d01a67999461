"""Every daemon profile's config test on a real Debian 12 VM (nightly): on the package's stock
configuration it must exit 0; with garbage appended to the main configuration file, non-zero. The check
then puts the file back, so one VM serves every case.

The VM has no network. Its packages come through the host-layer machinery, as a layer build's do: the
orchestrator's private apt (:class:`~orchestrator.layers.aptroot.AptRoot`) resolves what the profiles'
packages need over the VM's own package database, :func:`~orchestrator.layers.debs.from_mirror`
downloads and verifies exactly those versions, and :func:`~orchestrator.layers.install.install`
installs them offline with every service held back. Not a :class:`~orchestrator.layers.plan.LayerPlan`:
a plan is made from a *target's* package database, and no target here has these packages; the
resolution step stands in for it.

Installed services are not started (install.py's policy-rc.d), so each case first does what the unit's
start would have done on a real host where the profile's test would run (``Case.prepare``). syslog-ng
conflicts with the rsyslog every guest runs: it gets a VM of its own. Profiles without a config test
have nothing to run (:data:`NO_CONFIG_TEST`); a test below keeps that list and the cases complete.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from orchestrator.app import App
from orchestrator.discover.profiles import PROFILES, SUDOERS_CHECK
from orchestrator.facts.model import Package
from orchestrator.facts.parse import ARCH, PACKAGE_NAME, VERSION
from orchestrator.imaging.mirror import host_mirror
from orchestrator.imaging.template import load_template
from orchestrator.layers import debs
from orchestrator.layers.aptroot import AptRoot, apt_errors
from orchestrator.layers.install import install
from orchestrator.layers.plan import template_packages
from orchestrator.transport.base import CommandResult, Transport
from tests.integration.helpers import unique_name

pytestmark = [pytest.mark.integration, pytest.mark.nightly]

#: Not a directive, option or statement in any of the formats below; the braces open a block nobody
#: closes, for the formats that have blocks.
GARBAGE: Final = "\nvmrepair-garbage {{{\n"
#: Bounds one config test (mariadbd and samba's testparm take a few seconds under TCG).
TEST_TIMEOUT_S: Final = 180.0
#: Bounds the offline install of all the cases' packages: about 145 over the template, 127 MB of .debs and
#: 600 MB installed (apt's answer on a bookworm host); a layer of 40 took three minutes under TCG.
INSTALL_TIMEOUT_S: Final = 3600.0
APT_TIMEOUT_S: Final = 600.0
MAX_STATUS_BYTES: Final = 64 * 1024**2
#: ``Inst NAME[:ARCH] [OLD] (VERSION ARCHIVES [ARCH])`` of ``apt-get -s install``.
_INST = re.compile(r"^Inst (?P<name>\S+?)(?::\S+)? (?:\[[^\]]*\] )?"
                   r"\((?P<version>\S+) [^\[]*\[(?P<arch>[^\]]+)\]\)")

#: Profiles whose ``config_test`` is empty (the profile's comment says why): nothing to run.
NO_CONFIG_TEST: Final = frozenset({"postgresql", "redis", "memcached", "postfix", "exim4", "cups", "cron"})
#: Not a profile: the host-level sudoers check (profiles.SUDOERS_CHECK) is run here as well.
SUDO: Final = "sudo"


@dataclass(frozen=True)
class Case:
    """One config test: which, the packages it needs, the file to break and with what."""

    name: str
    argv: tuple[str, ...]
    packages: tuple[str, ...]
    #: The main configuration file (a symlink is followed: the garbage goes into its target).
    main_config: str
    garbage: str = GARBAGE
    #: Run before the test: what the unit's start puts in place on a host where the service runs.
    prepare: tuple[tuple[str, ...], ...] = ()


def _case(name: str, main_config: str, *, garbage: str = GARBAGE, prepare: tuple[tuple[str, ...], ...] = (),
          extra_packages: tuple[str, ...] = ()) -> Case:
    profile = next(p for p in PROFILES if p.name == name)
    return Case(name, profile.config_test, profile.packages + extra_packages, main_config, garbage, prepare)


CASES: Final[tuple[Case, ...]] = (
    _case("nginx", "/etc/nginx/nginx.conf"),
    _case("apache2", "/etc/apache2/apache2.conf"),
    _case("lighttpd", "/etc/lighttpd/lighttpd.conf"),
    _case("haproxy", "/etc/haproxy/haproxy.cfg"),
    _case("squid", "/etc/squid/squid.conf"),
    _case("varnish", "/etc/varnish/default.vcl"),
    _case("php-fpm", "/etc/php/8.2/fpm/php-fpm.conf"),
    # An unknown option in a group the server reads: mariadbd exits 7 (services.py, WATCH_YAML); a bare
    # line would land in mariadb.cnf's [client-server] group.
    _case("mariadb", "/etc/mysql/my.cnf", garbage="\n[mysqld]\nvmrepair-garbage-option = 1\n"),
    _case("bind9", "/etc/bind/named.conf"),
    # unbound-checkconf requires the trust anchor the unit's ExecStartPre copies from dns-root-data.
    _case("unbound", "/etc/unbound/unbound.conf", extra_packages=("dns-root-data",),
          prepare=(("/usr/libexec/unbound-helper", "root_trust_anchor_update"),)),
    _case("dnsmasq", "/etc/dnsmasq.conf"),
    _case("chrony", "/etc/chrony/chrony.conf"),
    _case("dovecot", "/etc/dovecot/dovecot.conf"),
    _case("sshd", "/etc/ssh/sshd_config"),
    # smb.conf's parser skips a line without '=' (lib/util/tini.c); an unclosed section header fails it.
    _case("samba", "/etc/samba/smb.conf", garbage="\n[vmrepair-garbage\n"),
    _case("nftables", "/etc/nftables.conf"),
    _case("fail2ban", "/etc/fail2ban/jail.conf"),
    # The package ships no keepalived.conf (its unit has ConditionFileNotEmpty=): an admin writes one.
    _case("keepalived", "/etc/keepalived/keepalived.conf",
          prepare=(("mkdir", "-p", "/etc/keepalived"),
                   ("sh", "-c", "printf 'global_defs {\\n    router_id vmrepair\\n}\\n' "
                                "> /etc/keepalived/keepalived.conf"))),
    _case("rsyslog", "/etc/rsyslog.conf"),
    Case(SUDO, SUDOERS_CHECK, ("sudo",), "/etc/sudoers"),
)
#: Cases that cannot share the first VM: syslog-ng-core and rsyslog conflict (both are the system log
#: daemon), and the guest's journal forwarding and logrotate expect rsyslog.
SEPARATE_CASES: Final[tuple[Case, ...]] = (
    _case("syslog-ng", "/etc/syslog-ng/syslog-ng.conf"),
)


def test_every_profile_with_a_config_test_has_a_case() -> None:
    covered = [c.name for c in (*CASES, *SEPARATE_CASES)]
    assert len(covered) == len(set(covered))
    assert set(covered) | NO_CONFIG_TEST == {p.name for p in PROFILES} | {SUDO}
    assert {p.name for p in PROFILES if not p.config_test} == NO_CONFIG_TEST
    assert all(c.argv for c in (*CASES, *SEPARATE_CASES))


# --- the VMs ------------------------------------------------------------------------------------------
# Defined before the module's guest is first used, so the two VMs never run at the same time.


@pytest.mark.parametrize("case", SEPARATE_CASES, ids=lambda c: c.name)
def test_a_conflicting_daemon_is_checked_in_a_vm_of_its_own(app: App, case: Case) -> None:
    name = unique_name("prf")
    app.vms.up(name)
    try:
        with app.vms.transport(name) as vm:
            vm.run(["systemctl", "is-system-running", "--wait"], timeout=180)
            equip(app, vm, case.packages)
            check_case(vm, case)
    finally:
        app.vms.destroy(name)


@pytest.fixture(scope="module")
def equipped(app: App, guest: str) -> Iterator[Transport]:
    """The module's guest with every case's packages installed."""
    with app.vms.transport(guest) as vm:
        vm.run(["systemctl", "is-system-running", "--wait"], timeout=180)
        equip(app, vm, [p for case in CASES for p in case.packages])
        yield vm


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_config_test_passes_on_the_stock_config_and_fails_on_garbage(equipped: Transport,
                                                                        case: Case) -> None:
    check_case(equipped, case)


# --- the check ----------------------------------------------------------------------------------------


def check_case(vm: Transport, case: Case) -> None:
    for argv in case.prepare:
        vm.check(list(argv), timeout=TEST_TIMEOUT_S)
    stock = vm.run(list(case.argv), timeout=TEST_TIMEOUT_S)
    assert stock.succeeded, f"{case.name}: {_describe(stock)} on the stock configuration"
    real = vm.check(["realpath", "-e", "--", case.main_config], timeout=30).stdout_text.strip()
    backup = f"/root/{case.name}.vmrepair-orig"
    # cp -a keeps owner and mode (visudo -c checks both); the backup sits outside every include glob.
    vm.check(["cp", "-a", "--", real, backup], timeout=30)
    try:
        # The file and the text travel as "$1" and "$2": no shell parses them.
        vm.check(["sh", "-c", 'printf "%s" "$2" >> "$1"', "sh", real, case.garbage], timeout=30)
        broken = vm.run(list(case.argv), timeout=TEST_TIMEOUT_S)
    finally:
        vm.check(["mv", "-f", "--", backup, real], timeout=30)
    assert not broken.succeeded, f"{case.name}: {_describe(broken)} with garbage appended to {real}"
    assert vm.run(list(case.argv), timeout=TEST_TIMEOUT_S).succeeded, f"{case.name}: {real} not restored"


def _describe(result: CommandResult) -> str:
    tail = " | ".join((result.stderr_text or result.stdout_text).strip().splitlines()[-5:])
    return f"`{' '.join(result.argv)}` exited {result.exit_status} ({tail})"


# --- installing packages into a VM without network, the host layer's way --------------------------------


def equip(app: App, vm: Transport, names: Sequence[str]) -> None:
    """Install ``names`` and what they need into ``vm``, at the mirror's current versions.

    Raises:
        LayerError: the mirror is unreachable, apt cannot resolve the set, or the install fails.
    """
    settings = app.settings
    suite = load_template(settings.templates_dir, settings.default_template).spec.suite
    arch = vm.check(["dpkg", "--print-architecture"], timeout=30).stdout_text.strip()
    mirror = settings.layers.mirror or settings.mirror or host_mirror(suite)
    # The layer builder's download cache and private apt: a nightly run reuses what layer builds fetched.
    cache_dir = settings.image_store / ".cache" / "layers"
    installed = template_packages(vm)
    wanted = sorted({n for n in names if n not in installed})
    assert wanted, "every package is in the template already: the install step proves nothing"
    with tempfile.TemporaryDirectory(prefix="vmrepair-profiles-") as scratch:
        status = Path(scratch) / "status"
        vm.get_file("/var/lib/dpkg/status", status, max_bytes=MAX_STATUS_BYTES)
        root = AptRoot.prepare(cache_dir, mirror=mirror, security_mirror=settings.layers.security_mirror,
                               suite=suite, arch=arch)
        packages = resolve(app.local, root, status, wanted)
        fetched = debs.from_mirror(packages, Path(scratch) / "debs", local=app.local, mirror=mirror,
                                   security_mirror=settings.layers.security_mirror, suite=suite, arch=arch,
                                   cache_dir=cache_dir, max_bytes=settings.layers.max_download_bytes,
                                   timeout=APT_TIMEOUT_S)
        install(vm, app.local, fetched.debs, timeout=INSTALL_TIMEOUT_S)
    missing = sorted(n for n in wanted if n not in template_packages(vm))
    assert missing == [], f"not installed in the VM: {missing}"


def resolve(local: Transport, root: AptRoot, status: Path, names: Sequence[str]) -> list[Package]:
    """What ``apt-get install NAMES`` would install over the package database ``status`` (the VM's):
    a simulation by the private apt, with the VM's database in place of its empty one."""
    with root.locked():
        if not root.is_fresh():
            root.update(local, timeout=APT_TIMEOUT_S)
        # Later -o options win over root.options(); an empty pkgcache keeps this database's cache out
        # of the shared root.
        result = local.run(["apt-get", *root.options(), "-o", f"Dir::State::status={status}",
                            "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
                            "-q", "-s", "--no-install-recommends", "install", "--", *names],
                           timeout=APT_TIMEOUT_S, max_output=16 * 1024**2)
    assert result.succeeded, f"apt cannot install {' '.join(names)} over the VM's packages: " \
                             f"{apt_errors(result)}"
    packages = []
    for line in result.stdout_text.splitlines():
        match = _INST.match(line)
        if match is None:
            continue
        name, version, arch = match["name"], match["version"], match["arch"]
        assert PACKAGE_NAME.match(name) and VERSION.match(version) and ARCH.match(arch), line
        packages.append(Package(name, version, arch, "ii"))
    assert {p.name for p in packages} >= set(names), f"apt's plan lacks some of {names}: {result.stdout_text}"
    return packages
