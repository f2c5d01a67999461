"""Static checks of the template recipes: images/debian-12 (customize.sh, overlay) and the extra recipe
images/debian-12-services layered on it."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[3] / "images"
RECIPE = IMAGES / "debian-12"
OVERLAY = RECIPE / "overlay"
CUSTOMIZE = RECIPE / "customize.sh"
SERVICES = IMAGES / "debian-12-services"
SERVICES_OVERLAY = SERVICES / "overlay"
SERVICES_CUSTOMIZE = SERVICES / "customize.sh"
SCRIPTS = pytest.mark.parametrize("script", [CUSTOMIZE, SERVICES_CUSTOMIZE], ids=["debian-12", "services"])
UNIT = OVERLAY / "etc/systemd/system/sampleapp.service"
SSHD_CONF = OVERLAY / "etc/ssh/sshd_config.d/vmrepair.conf"


def _unit_sections(path: Path) -> dict[str, dict[str, list[str]]]:
    """Parse a systemd unit file: section -> key -> values (repeated keys accumulate)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: {line!r} is outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _shell_commands(path: Path) -> list[str]:
    """Lines of a shell script with backslash continuations joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


def _systemctl_units(verb: str, script: Path = CUSTOMIZE) -> set[str]:
    units: set[str] = set()
    for command in _shell_commands(script):
        words = command.split()
        if words[:2] == ["systemctl", verb]:
            units.update(w for w in words[2:] if not w.startswith(("-", ">", "2>", "|")))
    return units


# --- customize.sh -------------------------------------------------------------------------------


@SCRIPTS
def test_customize_is_valid_posix_sh(script: Path) -> None:
    sh = shutil.which("sh") or "/bin/sh"
    result = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert script.read_text(encoding="utf-8").startswith("#!/bin/sh\n")


@SCRIPTS
@pytest.mark.skipif(shutil.which("dash") is None, reason="dash not installed")
def test_customize_parses_under_dash(script: Path) -> None:
    # Debian's /bin/sh inside the chroot is dash.
    result = subprocess.run(["dash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@SCRIPTS
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_customize_passes_shellcheck(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


#: Nothing may be started in the chroot, nothing fetched, and the .deb cache is not cleaned.
OFFLINE_FORBIDDEN = (
    r"systemctl\s+(start|restart|reload|daemon-reload)",
    r"\bservice\s+\S+\s+start",
    r"apt-get\s+(clean|autoclean|update|install)",
    r"\b(wget|curl)\s",
)


def _assert_strict_and_offline(script: Path, *forbidden: str) -> None:
    commands = _shell_commands(script)
    assert "set -eu" in commands
    text = "\n".join(commands)
    for pattern in (*OFFLINE_FORBIDDEN, *forbidden):
        assert not re.search(pattern, text), pattern


def test_customize_is_strict_and_offline() -> None:
    _assert_strict_and_offline(CUSTOMIZE, r"/var/cache/apt")  # the .deb cache is kept whole


def test_customize_enables_the_services_the_scenarios_rely_on() -> None:
    enabled = _systemctl_units("enable")
    for unit in (
        "ssh.service",
        "systemd-networkd.service",
        "nginx.service",
        "cron.service",
        "rsyslog.service",
        "sampleapp.service",
    ):
        assert unit in enabled
    masked = _systemctl_units("mask")
    assert "ssh.socket" in masked
    assert "systemd-networkd-wait-online.service" in masked
    assert {"apt-daily.timer", "apt-daily-upgrade.timer"} <= masked
    assert not (enabled & masked)


def test_customize_creates_the_sampleapp_account_and_state_dir() -> None:
    text = "\n".join(_shell_commands(CUSTOMIZE))
    useradd = re.search(r"^useradd .*$", text, re.MULTILINE)
    assert useradd is not None
    for option in ("--system", "--home-dir /var/lib/sampleapp", "--shell /usr/sbin/nologin"):
        assert option in useradd.group(0)
    assert useradd.group(0).endswith(" sampleapp")
    assert "install -d -o sampleapp -g sampleapp -m 0750 /var/lib/sampleapp" in text


def test_customize_prunes_host_keys_and_empties_root_startup_files() -> None:
    text = "\n".join(_shell_commands(CUSTOMIZE))
    assert "/etc/ssh/ssh_host_rsa_key" in text
    assert "/etc/ssh/ssh_host_ecdsa_key" in text
    assert ":>/root/.bashrc" in text.replace(" ", "")
    assert ":>/root/.profile" in text.replace(" ", "")
    assert ":>/etc/machine-id" in text.replace(" ", "")


# --- sampleapp.service ------------------------------------------------------------------------


def test_sampleapp_unit_has_the_required_settings() -> None:
    unit = _unit_sections(UNIT)
    service, unit_sec, install = unit["Service"], unit["Unit"], unit["Install"]

    def one(section: dict[str, list[str]], key: str) -> str:
        values = section.get(key, [])
        assert len(values) == 1, f"{key}: {values}"
        return values[0]

    assert one(service, "User") == "sampleapp"
    assert one(service, "EnvironmentFile") == "/etc/default/sampleapp"
    assert one(service, "ExecStart") == "/usr/bin/python3 -m sampleapp"
    assert one(service, "WorkingDirectory") == "/opt/sampleapp"
    assert one(service, "Restart") == "on-failure"
    assert one(service, "RestartSec") == "2"
    assert "3" in one(service, "RestartPreventExitStatus").split()
    assert int(one(unit_sec, "StartLimitBurst")) >= 1
    assert int(one(unit_sec, "StartLimitIntervalSec")) >= 1
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "ReadWritePaths") == "/var/lib/sampleapp"
    assert one(service, "ProtectHome") == "yes"
    assert one(service, "PrivateTmp") == "yes"
    assert one(install, "WantedBy") == "multi-user.target"


def test_sampleapp_environment_file() -> None:
    text = (OVERLAY / "etc/default/sampleapp").read_text(encoding="utf-8")
    settings = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert settings == ["SAMPLEAPP_PORT=8080"]


def test_sampleapp_package_layout() -> None:
    app = OVERLAY / "opt/sampleapp"
    for name in ("__init__.py", "__main__.py", "config.py", "journal.py", "server.py"):
        assert (app / "sampleapp" / name).is_file()
    assert re.search(
        r'^__version__ = "1\.4\.2"$',
        (app / "sampleapp/__init__.py").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    requirements = (app / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert [r for r in requirements if r.strip() and not r.startswith("#")] == []


# --- sshd ----------------------------------------------------------------------------------------


def _sshd_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in SSHD_CONF.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), []).append(value.strip())
    return settings


def test_sshd_config_is_key_only_with_the_pinned_host_key() -> None:
    settings = _sshd_settings()
    assert "match" not in settings, "a Match block would make later settings conditional"
    assert settings["passwordauthentication"] == ["no"]
    assert settings["kbdinteractiveauthentication"] == ["no"]
    assert settings["permitrootlogin"] == ["prohibit-password"]
    assert settings["hostkey"] == ["/etc/ssh/ssh_host_ed25519_key"]
    assert settings["usedns"] == ["no"]
    assert settings["printmotd"] == ["no"]
    assert settings["maxstartups"] == ["50:30:100"]
    assert settings["clientaliveinterval"] == ["15"]
    assert SSHD_CONF.name.endswith(".conf"), "sshd only includes sshd_config.d/*.conf"


# --- the rest of the overlay ----------------------------------------------------------------------


def test_fstab_hostname_and_hosts() -> None:
    assert (OVERLAY / "etc/fstab").read_text(encoding="utf-8").split() == [
        "/dev/vda",
        "/",
        "ext4",
        "defaults,errors=remount-ro",
        "0",
        "1",
    ]
    assert (OVERLAY / "etc/hostname").read_text(encoding="utf-8") == "vmrepair-guest\n"
    hosts = (OVERLAY / "etc/hosts").read_text(encoding="utf-8")
    assert re.search(r"^127\.0\.0\.1\s+localhost$", hosts, re.MULTILINE)
    assert re.search(r"^127\.0\.1\.1\s+vmrepair-guest$", hosts, re.MULTILINE)


def test_networkd_takes_dhcp_on_every_ethernet_nic() -> None:
    networks = list((OVERLAY / "etc/systemd/network").glob("*.network"))
    assert len(networks) == 1
    sections = _unit_sections(networks[0])
    assert sections["Match"]["Name"] == ["e*"]
    assert sections["Network"]["DHCP"] == ["ipv4"]


def test_journal_is_persistent_and_capped() -> None:
    sections = _unit_sections(OVERLAY / "etc/systemd/journald.conf.d/vmrepair.conf")
    assert sections["Journal"]["Storage"] == ["persistent"]
    assert sections["Journal"]["SystemMaxUse"] == ["64M"]


def test_overlay_leaves_modes_of_sensitive_directories_alone() -> None:
    # The builder copies the overlay with its modes; git records no directory modes, so the
    # overlay must not carry directories whose mode matters (/root is 0700, the sampleapp
    # state directory 0750 owned by sampleapp): customize.sh creates those.
    for path in ("root", "var/lib/sampleapp", "etc/ssh/ssh_host_ed25519_key", "tmp"):
        assert not (OVERLAY / path).exists(), path


@pytest.mark.parametrize("overlay", [OVERLAY, SERVICES_OVERLAY], ids=["debian-12", "services"])
def test_overlay_files_are_not_writable_by_others(overlay: Path) -> None:
    for path in overlay.rglob("*"):
        mode = path.lstat().st_mode
        assert not mode & (stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID), path


# --- images/debian-12-services: apache2 and mariadb on top of debian-12 -------------------------


def _apache_ports(path: Path) -> list[int]:
    return [int(m) for m in re.findall(r"^\s*Listen\s+(?:\S+:)?(\d+)\s*$", path.read_text(), re.MULTILINE)]


def test_services_recipe_copies_nothing_of_debian_12() -> None:
    # It builds on images/debian-12 (applied first): a file of both overlays would be a copy that
    # silently replaces the default guest's.
    ours = {p.relative_to(SERVICES_OVERLAY) for p in SERVICES_OVERLAY.rglob("*") if not p.is_dir()}
    base = {p.relative_to(OVERLAY) for p in OVERLAY.rglob("*") if not p.is_dir()}
    assert ours
    assert not ours & base


def test_services_customize_is_strict_offline_and_enables_both_services() -> None:
    _assert_strict_and_offline(SERVICES_CUSTOMIZE)
    assert {"apache2.service", "mariadb.service"} <= _systemctl_units("enable", SERVICES_CUSTOMIZE)
    assert not _systemctl_units("mask", SERVICES_CUSTOMIZE) & _systemctl_units("enable")


def test_services_customize_drops_only_mariadbs_debs() -> None:
    removals = [c for c in _shell_commands(SERVICES_CUSTOMIZE) if c.startswith("rm ") and "archives" in c]
    assert len(removals) == 1
    globs = re.findall(r'"\$archives"/(\S+)', removals[0])
    assert sorted(globs) == ["galera-*.deb", "libmariadb*.deb", "mariadb-*.deb", "mysql-common_*.deb"]
    assert "archives=/var/cache/apt/archives" in _shell_commands(SERVICES_CUSTOMIZE)


def test_apache_listens_on_one_port_nobody_else_uses() -> None:
    ports = _apache_ports(SERVICES_OVERLAY / "etc/apache2/ports.conf")
    assert len(ports) == 1
    (port,) = ports
    # nginx has port 80 and sampleapp its own, here and in the debian-12 troubleshooting VM a repair
    # installs apache2 into: apache2 could not bind either (measured: "Address already in use").
    sampleapp = (OVERLAY / "etc/default/sampleapp").read_text(encoding="utf-8")
    assert port not in (80, 443)
    assert f"SAMPLEAPP_PORT={port}\n" not in sampleapp
    site = (SERVICES_OVERLAY / "etc/apache2/sites-available/000-default.conf").read_text(encoding="utf-8")
    assert re.findall(r"^<VirtualHost \*:(\d+)>$", site, re.MULTILINE) == [str(port)]


def test_apache_serves_its_own_page_not_nginxs_document_root() -> None:
    site = (SERVICES_OVERLAY / "etc/apache2/sites-available/000-default.conf").read_text(encoding="utf-8")
    roots = re.findall(r"^\s*DocumentRoot\s+(\S+)$", site, re.MULTILINE)
    assert roots == ["/var/www/apache2"]
    assert (SERVICES_OVERLAY / roots[0].lstrip("/") / "index.html").is_file()
    conf = SERVICES_OVERLAY / "etc/apache2/conf-available/vmrepair-servername.conf"
    assert "a2enconf -q vmrepair-servername" in _shell_commands(SERVICES_CUSTOMIZE)
    assert re.search(r"^ServerName \S+$", conf.read_text(encoding="utf-8"), re.MULTILINE)
