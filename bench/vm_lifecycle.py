"""Benchmark the VM spine: linked clone vs full copy, cold boot to SSH, snapshots, SSH round trips.

A script, not a test: it prints medians side by side with ratios in one run. Run as root after
`make setup` (the template must be built): `.venv/bin/python bench/vm_lifecycle.py [--boots N]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.app import App
from orchestrator.hypervisor.warm import warm_vm_name


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return samples


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:9.1f} ms" if seconds < 1 else f"{seconds:9.2f} s "


def row(label: str, samples: list[float], baseline: list[float] | None = None) -> None:
    med = statistics.median(samples)
    ratio = ""
    if baseline:
        ratio = f"   x{statistics.median(baseline) / med:6.1f} faster than the row above"
    print(f"  {label:<44} {fmt(med)}  (n={len(samples)}){ratio}")


def bench_disks(app: App, repeat: int) -> None:
    base = app.images.require(app.settings.default_template).base_disk
    with tempfile.TemporaryDirectory(dir=app.settings.state_dir) as tmp:
        target = Path(tmp) / "copy.qcow2"

        def full_copy() -> None:
            target.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(base), str(target)], check=True)
            with target.open("rb") as handle:
                os.fsync(handle.fileno())

        def linked_clone() -> None:
            target.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(base), str(target)], check=True)

        copies = timed(full_copy, repeat)
        clones = timed(linked_clone, repeat)
    print(f"disk clone of the template ({base.stat().st_size // 2**20} MiB qcow2)")
    row("full copy (qemu-img convert + fsync)", copies)
    row("linked clone (qcow2 overlay)", clones, copies)


def bench_ssh(app: App, name: str, repeat: int) -> None:
    record = app.vms.record(name)
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp) / "known_hosts"
        known.write_text(f"[127.0.0.1]:{record.ssh_port} {record.host_key}\n")
        openssh = ["ssh", "-q", "-p", str(record.ssh_port), "-i", str(app.settings.client_key),
                   "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                   "-o", "BatchMode=yes", "root@127.0.0.1", "true"]
        per_process = timed(lambda: subprocess.run(openssh, check=True), repeat)
    with app.vms.transport(name) as ssh:
        ssh.check(["true"])  # connect once; the transport keeps the session
        reused = timed(lambda: ssh.check(["true"]), repeat * 5)
    print("per-command SSH round trip (`true`)")
    row("new OpenSSH process per command (testinfra ssh://)", per_process)
    row("vmrepair paramiko session, TCP_NODELAY", reused, per_process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boots", type=int, default=2, help="cold boots to measure")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app = App.from_env()
    print(f"vmrepair VM benchmark: {os.cpu_count()} cores, accel={app.settings.vm.accel}\n")
    bench_disks(app, args.repeat)

    boots: list[float] = []
    upto_ssh: list[float] = []
    name = f"bench-{secrets.token_hex(3)}"
    try:
        for i in range(args.boots):
            began = time.perf_counter()
            result = app.vms.up(name)
            boots.append(time.perf_counter() - began)
            upto_ssh.append(result.boot_seconds)
            if i < args.boots - 1:
                app.vms.destroy(name)
        warm_name = warm_vm_name(app.settings.default_template)
        app.vms.prepare_warm()
        warms: list[float] = []
        for _ in range(args.boots):
            began = time.perf_counter()
            result = app.vms.up(warm_name, ephemeral=True, warm=True)
            warms.append(time.perf_counter() - began)
            app.vms.destroy(warm_name)
            if not result.is_warm:
                print(f"  (warm start fell back to a cold boot: {result.warm_fallback})")
        print("VM start to SSH (TCG unless the CPU has vmx/svm)")
        row("cold boot: clone + define + start + SSH", boots)
        row("warm start: restore saved state + clock fix", warms, boots)
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
        creates: list[float] = []
        reverts: list[float] = []
        for i in range(args.repeat):
            snap = f"s{i}"
            creates += timed(lambda s=snap: app.vms.snapshot(name, s), 1)  # type: ignore[misc]
            reverts += timed(lambda s=snap: app.vms.revert(name, s), 1)  # type: ignore[misc]
        print("internal snapshot with memory state")
        row("snapshot create", creates)
        row("snapshot revert", reverts)
        bench_ssh(app, name, args.repeat)
    finally:
        if name in {vm.name for vm in app.vms.list()}:
            app.vms.destroy(name)
        app.close()


if __name__ == "__main__":
    main()
