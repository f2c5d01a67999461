"""The fstab fault, run for real on a copy of an fstab: it appends exactly one line the fstab probe
rules call boot-blocking, keeps the rest of the file, mounts nothing and only reloads systemd."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.demo.faults import FAULTS
from orchestrator.detect.fstab_table import need_of, parse_fstab

TEMPLATE_FSTAB = b"/dev/vda / ext4 defaults,errors=remount-ro 0 1\n"


def run_fault(tmp_path: Path, variant: str, fstab: bytes = TEMPLATE_FSTAB,
              systemctl_exit: int = 0) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """Run the fault's program with its argv, the fstab path swapped for a temporary copy and a
    ``systemctl`` on PATH that records its arguments."""
    path = tmp_path / "fstab"
    path.write_bytes(fstab)
    path.chmod(0o640)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "systemctl.args"
    fake = bindir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexit {systemctl_exit}\n')
    fake.chmod(0o755)
    argv = FAULTS["fstab"].argv(variant)
    assert argv[3] == "/etc/fstab"
    argv = [sys.executable, *argv[1:3], str(path), *argv[4:]]
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    return done, path, record


@pytest.mark.parametrize(("variant", "source_start"), [("uuid", "UUID="), ("device", "/dev/vdz1")])
def test_appends_one_blocking_line_and_reloads_systemd(tmp_path: Path, variant: str,
                                                       source_start: str) -> None:
    done, path, record = run_fault(tmp_path, variant)
    assert done.returncode == 0, done.stderr
    data = path.read_bytes()
    assert data.startswith(TEMPLATE_FSTAB)
    added = data[len(TEMPLATE_FSTAB):]
    assert added.endswith(b"\n") and added.count(b"\n") == 1
    root, entry = parse_fstab(data)
    assert entry.source.startswith(source_start)
    assert (entry.target, entry.fstype, entry.options) == ("/mnt/vmrepair-data", "ext4", ("defaults",))
    assert "nofail" not in entry.option_names
    need = need_of(entry)
    assert need is not None and need.path is not None  # takes part in the boot, needs a device
    assert need_of(root) is None
    assert record.read_text() == "daemon-reload\n"
    # Nothing else: no mount point created, no temporary file left, mode kept.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "fstab", "systemctl.args"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_uuid_variant_names_a_fresh_uuid_each_time(tmp_path: Path) -> None:
    sources = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        done, path, _ = run_fault(tmp_path / name, "uuid")
        assert done.returncode == 0, done.stderr
        sources.append(parse_fstab(path.read_bytes())[-1].source)
    assert sources[0] != sources[1]
    assert all(re.fullmatch(r"UUID=[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", s)
               for s in sources)


def test_a_file_without_final_newline_gets_one_before_the_new_line(tmp_path: Path) -> None:
    done, path, _ = run_fault(tmp_path, "device", fstab=TEMPLATE_FSTAB.rstrip(b"\n"))
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == TEMPLATE_FSTAB + b"/dev/vdz1\t/mnt/vmrepair-data\text4\tdefaults\t0\t2\n"


def test_a_failing_daemon_reload_fails_the_injection(tmp_path: Path) -> None:
    done, _, _ = run_fault(tmp_path, "device", systemctl_exit=1)
    assert done.returncode != 0
    assert "CalledProcessError" in done.stderr
    assert "daemon-reload" in done.stderr
