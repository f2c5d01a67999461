"""Benchmark the daemon at rest: resident memory and CPU time against the targets (60 MB, 0.5 %).

Starts `vmrepair daemon --foreground` (through the console script's re-exec, as systemd would) on a
temporary state dir and socket, with the local target, policy detect-only and the default
intervals, waits for it to be ready, lets it warm up, then samples /proc/PID/status (VmRSS) and
/proc/PID/stat (utime+stime, and cutime+cstime for the probe commands it ran) once a second.

Run: `.venv/bin/python bench/daemon_idle.py [--seconds 60] [--warmup 15]` (no root needed; as root,
detection runs the same probes it would on a real host).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSS_TARGET_MB = 60.0
CPU_TARGET_PCT = 0.5
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, waited-for children's cutime+cstime) in seconds."""
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def wait_ready(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode} before it was ready")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(path))
                sock.sendall(b"GET /ready HTTP/1.1\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return time.monotonic() - began
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the daemon was not ready within {timeout} s")


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling window")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds after ready before sampling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmrepair-bench-") as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(
            f"daemon:\n  policy: detect-only\n  target: local\naudit:\n  path: {root / 'audit.jsonl'}\n")
        sock_path = root / "run" / "api.sock"
        env = {**os.environ, "VMREPAIR_CONFIG": str(root / "config.yaml"),
               "VMREPAIR_STATE_DIR": str(root / "state"), "VMREPAIR_SOCKET": str(sock_path)}
        env.pop("NOTIFY_SOCKET", None)
        log = (root / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "daemon", "--foreground"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready_s = wait_ready(sock_path, proc, timeout=120)
            print(f"daemon pid {proc.pid} ready in {ready_s:.1f} s; warming up {args.warmup:.0f} s")
            time.sleep(args.warmup)
            own0, kids0 = cpu_seconds(proc.pid)
            began = time.monotonic()
            rss = []
            while time.monotonic() - began < args.seconds:
                rss.append(rss_mb(proc.pid))
                time.sleep(1.0)
            wall = time.monotonic() - began
            own1, kids1 = cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()
        own_pct = (own1 - own0) / wall * 100
        kids_pct = (kids1 - kids0) / wall * 100
        print(f"\nidle daemon: local target, detect-only, default intervals; {wall:.0f} s sampled "
              f"after a {args.warmup:.0f} s warm-up\n")
        print(f"  {'':<34}{'measured':>12}{'target':>12}")
        print(f"  {'RSS, median (MB)':<34}{statistics.median(rss):12.1f}{RSS_TARGET_MB:12.0f}   "
              f"{verdict(statistics.median(rss) <= RSS_TARGET_MB)}")
        print(f"  {'RSS, max (MB)':<34}{max(rss):12.1f}{RSS_TARGET_MB:12.0f}   "
              f"{verdict(max(rss) <= RSS_TARGET_MB)}")
        print(f"  {'CPU, daemon (% of one core)':<34}{own_pct:12.2f}{CPU_TARGET_PCT:12.1f}   "
              f"{verdict(own_pct <= CPU_TARGET_PCT)}")
        print(f"  {'CPU, its probe commands (%)':<34}{kids_pct:12.2f}{'-':>12}   (systemctl, curl, agent)")
        print(f"\n  exit after SIGTERM: {proc.returncode}")


if __name__ == "__main__":
    main()
