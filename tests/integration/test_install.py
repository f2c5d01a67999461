"""`make install`'s script, for real: the wheel built offline, a fresh venv outside the checkout with
its dependencies from the package index, the command, the systemd unit (which `systemd-analyze
verify` accepts), tmpfiles.d, logrotate, the config example, completion and the man page; the
installed program, run from `/`, dry-runs a repair of a real VM; `uninstall` removes what it put
there and keeps the operator's config.

Every path is redirected into a temporary directory (PREFIX, BINDIR, ... and NO_SYSTEMD=1), so the
machine the tests run on is not changed; the layout is the one `make install` writes under /.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.app import App
from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.demo.faults import inject
from orchestrator.model import SessionStatus
from tests.integration.helpers import booted_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
#: pip resolves the dependencies from the index (its cache holds what the dev venv built: libvirt-python).
INSTALL_TIMEOUT_S = 900
NGINX_SITE = "/etc/nginx/sites-available/default"


def _layout(root: Path) -> dict[str, str]:
    return {"PREFIX": str(root / "opt" / "vmrepair"), "BINDIR": str(root / "bin"),
            "SYSCONFDIR": str(root / "etc"), "UNITDIR": str(root / "units"),
            "TMPFILESDIR": str(root / "tmpfiles.d"), "LOGROTATEDIR": str(root / "logrotate.d"),
            "BASHCOMPDIR": str(root / "bash-completion"), "ZSHCOMPDIR": str(root / "zsh"),
            "MANDIR": str(root / "man1"), "NO_SYSTEMD": "1"}


def _installer(action: str, layout: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(["scripts/install.sh", action], cwd=PROJECT_ROOT, env={**env, **layout, **extra},
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("install")
    dist = root / "dist"
    built = subprocess.run(["scripts/build-wheel.sh", str(dist)], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("vmrepair-*.whl")
    layout = _layout(root)
    done = _installer("install", layout, WHEEL=str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    return layout


def _cli(layout: dict[str, str], *args: str, app: App | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, from `/`, with nothing of this checkout on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if app is not None:
        env["VMREPAIR_STATE_DIR"] = str(app.settings.state_dir)
    return subprocess.run([str(Path(layout["BINDIR"]) / "vmrepair"), *args], cwd="/", env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def test_install_writes_the_whole_layout_and_the_unit_verifies(installed: dict[str, str]) -> None:
    prefix, bindir = Path(installed["PREFIX"]), Path(installed["BINDIR"])
    assert (bindir / "vmrepair").resolve() == (prefix / "bin" / "vmrepair").resolve()
    version = _cli(installed, "--version")
    assert version.returncode == 0 and __version__ in version.stdout, version
    # The installed package, not this checkout, with its data files.
    where = subprocess.run([str(prefix / "bin" / "python"), "-c",
                            "import orchestrator.resources as r, orchestrator; "
                            "print(orchestrator.__file__); print(r.shipped_playbooks_dir())"],
                           cwd="/", capture_output=True, text=True, check=True)
    module, playbooks = where.stdout.split()
    assert module.startswith(str(prefix)) and Path(playbooks).is_relative_to(prefix), where.stdout
    assert sorted(p.name for p in Path(playbooks).glob("*.yaml"))
    unit = Path(installed["UNITDIR"]) / "vmrepair.service"
    assert f"ExecStart={bindir}/vmrepair daemon" in unit.read_text()
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for name in ("TMPFILESDIR", "LOGROTATEDIR"):
        assert any(Path(installed[name]).iterdir()), name
    example = Path(installed["SYSCONFDIR"]) / "vmrepair" / "config.yaml.example"
    check = _cli(installed, "config", "check", str(example))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "complete -" in (Path(installed["BASHCOMPDIR"]) / "vmrepair").read_text()
    assert (Path(installed["ZSHCOMPDIR"]) / "_vmrepair").read_text().startswith("#compdef")
    assert (Path(installed["MANDIR"]) / "vmrepair.1").read_text().lstrip().startswith((".TH", ".\\\""))


@pytest.fixture
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "instpatient", HEALTHY)


def test_the_installed_program_dry_runs_a_repair_of_a_real_vm(
        app: App, installed: dict[str, str], patient: str) -> None:
    with app.vms.transport(patient) as ssh:
        inject(ssh, "nginx-config", "directive")
        broken = ssh.check(["sha256sum", NGINX_SITE]).stdout_text
    run = _cli(installed, "run", "--target", f"vm:{patient}", "--dry-run", "--json", app=app)
    assert run.returncode == 10, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["status"] == SessionStatus.NOT_REPAIRED, result
    assert any(c.get("dry_run") for c in result["components"]), result
    with app.vms.transport(patient) as ssh:
        assert ssh.check(["sha256sum", NGINX_SITE]).stdout_text == broken


def test_uninstall_removes_the_install_and_keeps_the_config(installed: dict[str, str]) -> None:
    config = Path(installed["SYSCONFDIR"]) / "vmrepair" / "config.yaml"
    config.write_text("# the operator's\n")
    done = _installer("uninstall", installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not Path(installed["PREFIX"]).exists()
    assert not (Path(installed["BINDIR"]) / "vmrepair").exists()
    assert not any(Path(installed["UNITDIR"]).iterdir())
    assert config.read_text() == "# the operator's\n"
    shutil.rmtree(Path(installed["PREFIX"]).parent, ignore_errors=True)
